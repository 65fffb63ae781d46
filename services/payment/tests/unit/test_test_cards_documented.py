"""The README's test-card table and the mock provider agree: every card it documents behaves, every special
card the provider knows is documented, and each number passes the same validation a real card does."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from app.domain.cards import validate_card
from mock_gateway.ledger import FUNDS_ARRIVE_LATER_CARD, TEST_CARD_OUTCOMES

README = Path(__file__).resolve().parents[4] / "README.md"
ROW = re.compile(r"^\| (\d{13,19}) \| (.+) \|$", re.MULTILINE)


def documented_cards() -> dict[str, str]:
    return dict(ROW.findall(README.read_text()))


def test_the_readme_documents_exactly_the_cards_the_mock_provider_treats_specially() -> None:
    assert set(documented_cards()) == set(TEST_CARD_OUTCOMES) | {FUNDS_ARRIVE_LATER_CARD}


def test_each_documented_card_passes_validation() -> None:
    for number in documented_cards():
        assert validate_card(number, 12, 2030, "123", date(2026, 1, 1)).last4 == number[-4:]


def test_each_failing_card_is_documented_with_its_failure_and_decline_type() -> None:
    documented = documented_cards()
    for number, outcome in TEST_CARD_OUTCOMES.items():
        if outcome.failure_code is not None:
            behaviour = documented[number]
            assert outcome.failure_code.replace("_", " ") in behaviour, (number, behaviour)
            assert f"({outcome.decline_type}" in behaviour, (number, behaviour)
