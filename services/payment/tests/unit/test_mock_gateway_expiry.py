"""The mock provider plays the issuer: a card valid when tokenized is declined once its expiry month has passed."""

from __future__ import annotations

from datetime import date

from app.domain.cards import CardBrand, CardDetails
from mock_gateway.ledger import EXPIRED_CARD, SUCCEEDED, Ledger


def card_expiring(ledger: Ledger, exp_month: int, exp_year: int):
    token = ledger.add_card("4242424242424242", CardDetails(CardBrand.VISA, "4242", exp_month, exp_year))
    return token, ledger.cards[token]


def test_a_card_is_charged_through_its_expiry_month_and_declined_as_expired_after() -> None:
    ledger = Ledger(seed=1, success_rate=1.0)
    token, card = card_expiring(ledger, 11, 2026)
    assert ledger.decide(token, card, "k1", date(2026, 11, 30)) == SUCCEEDED
    assert ledger.decide(token, card, "k2", date(2026, 12, 1)) == EXPIRED_CARD
    assert (EXPIRED_CARD.failure_code, EXPIRED_CARD.decline_type) == ("expired_card", "hard")


def test_expiry_wins_over_the_test_cards_own_behaviour() -> None:
    ledger = Ledger(seed=1, success_rate=1.0)
    token = ledger.add_card("4000000000009995", CardDetails(CardBrand.VISA, "9995", 1, 2020))
    assert ledger.decide(token, ledger.cards[token], "k", date(2026, 1, 1)) == EXPIRED_CARD
