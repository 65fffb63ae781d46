"""The mock provider's memory and rules: tokenized cards, charges, refunds, and how each test card behaves.

Card numbers live only here, in memory: this process plays the provider, the payment service keeps tokens.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from app.domain.cards import CardDetails, is_expired

ChargeStatus = Literal["succeeded", "failed"]
DeclineType = Literal["hard", "soft"]


@dataclass(frozen=True, slots=True)
class Outcome:
    status: ChargeStatus
    failure_code: str | None = None
    decline_type: DeclineType | None = None
    # The charge is recorded as made, but the answer never reaches the client.
    hangs: bool = False


SUCCEEDED = Outcome("succeeded")
INSUFFICIENT_FUNDS = Outcome("failed", "insufficient_funds", "soft")
EXPIRED_CARD = Outcome("failed", "expired_card", "hard")

TEST_CARD_OUTCOMES: dict[str, Outcome] = {
    "4242424242424242": SUCCEEDED,
    "4000000000000002": Outcome("failed", "card_declined", "hard"),
    "4000000000009995": INSUFFICIENT_FUNDS,
    "4000000000000119": Outcome("failed", "processing_error", "soft"),
    "4000000000000069": EXPIRED_CARD,
    "4000000000000259": Outcome("succeeded", hangs=True),
}
# Funds arrive after the first attempt: each token of this card fails its first charge (insufficient funds,
# soft) and succeeds on every later one, so a dunning retry recovers without a new card.
FUNDS_ARRIVE_LATER_CARD = "4000000000004442"

FAILURE_MESSAGES = {
    "card_declined": "Your card was declined.",
    "expired_card": "Your card has expired.",
    "insufficient_funds": "Your card has insufficient funds.",
    "processing_error": "An error occurred while processing your card. Try again later.",
}


class ProviderError(Exception):
    """A request the provider refuses; rendered as a Stripe-like JSON error body."""

    def __init__(self, status_code: int, code: str, message: str, param: str | None = None,
                 error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.param = param
        self.error_type = error_type

    def as_json(self) -> dict[str, Any]:
        return {"error": {"type": self.error_type, "code": self.code, "message": self.message, "param": self.param}}


@dataclass(frozen=True, slots=True)
class StoredCard:
    number: str
    details: CardDetails


@dataclass(slots=True)
class Charge:
    id: str
    token: str
    amount: int
    currency: str
    description: str | None
    idempotency_key: str
    outcome: Outcome
    brand: str
    last4: str
    created: int
    amount_refunded: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "charge",
            "status": self.outcome.status,
            "failure_code": self.outcome.failure_code,
            "failure_message": FAILURE_MESSAGES.get(self.outcome.failure_code or ""),
            "decline_type": self.outcome.decline_type,
            "amount": self.amount,
            "amount_refunded": self.amount_refunded,
            "currency": self.currency,
            "description": self.description,
            "idempotency_key": self.idempotency_key,
            "card": {"brand": self.brand, "last4": self.last4},
            "created": self.created,
        }


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    charge_id: str
    amount: int
    currency: str
    idempotency_key: str
    created: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "refund",
            "status": "succeeded",
            "charge_id": self.charge_id,
            "amount": self.amount,
            "currency": self.currency,
            "idempotency_key": self.idempotency_key,
            "created": self.created,
        }


@dataclass(slots=True)
class Counters:
    tokens: int = 0
    charge_calls: int = 0
    charges: int = 0
    charges_succeeded: int = 0
    refund_calls: int = 0
    refunds: int = 0
    # Minor units, every currency added up (the tests' own check that what was taken is what was owed).
    amount_captured: int = 0
    amount_refunded: int = 0


@dataclass(slots=True)
class Ledger:
    """Everything the provider remembers; one instance per process, cleared by reset()."""

    seed: int
    success_rate: float
    latency_s: float = 0.0
    cards: dict[str, StoredCard] = field(default_factory=dict)
    charges: dict[str, Charge] = field(default_factory=dict)
    charge_ids_by_key: dict[str, str] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    refund_ids_by_key: dict[str, str] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def reset(self) -> None:
        self.cards.clear()
        self.charges.clear()
        self.charge_ids_by_key.clear()
        self.refunds.clear()
        self.refund_ids_by_key.clear()
        self.counters = Counters()
        self._locks.clear()

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def add_card(self, number: str, details: CardDetails) -> str:
        token = f"tok_{secrets.token_hex(12)}"
        self.cards[token] = StoredCard(number=number, details=details)
        self.counters.tokens += 1
        return token

    def decide(self, token: str, card: StoredCard, idempotency_key: str, today: date) -> Outcome:
        """The issuer declines a card past its expiry month (it was valid when tokenized); test cards behave as
        documented; any other card succeeds with `success_rate`."""
        number = card.number
        if is_expired(card.details.exp_month, card.details.exp_year, today):
            return EXPIRED_CARD
        if number == FUNDS_ARRIVE_LATER_CARD:
            charged_before = any(charge.token == token for charge in self.charges.values())
            return SUCCEEDED if charged_before else INSUFFICIENT_FUNDS
        if number in TEST_CARD_OUTCOMES:
            return TEST_CARD_OUTCOMES[number]
        # Seeded per (seed, key), not drawn from one shared stream, so a run is reproducible
        # whatever order charges arrive in. str seeds go through SHA-512, so PYTHONHASHSEED does not matter.
        draw = random.Random(f"{self.seed}:{idempotency_key}").random()
        return SUCCEEDED if draw < self.success_rate else INSUFFICIENT_FUNDS

    async def create_charge(self, token: str, amount: int, currency: str, idempotency_key: str,
                            description: str | None) -> tuple[Charge, bool]:
        """(charge, created): a known key returns its charge unchanged instead of charging again."""
        self.counters.charge_calls += 1
        # One lock per key: concurrent requests with the same key must not both pass the "is it new?" check.
        async with self._lock(f"charge:{idempotency_key}"):
            existing_id = self.charge_ids_by_key.get(idempotency_key)
            if existing_id is not None:
                existing = self.charges[existing_id]
                # Only the fields that move money must match; a reworded description is still a replay.
                if (existing.token, existing.amount, existing.currency) != (token, amount, currency):
                    raise ProviderError(
                        409, "idempotency_key_in_use",
                        "idempotency_key was already used for a charge with different parameters",
                        "idempotency_key", "idempotency_error",
                    )
                return existing, False
            card = self.cards.get(token)
            if card is None:
                raise ProviderError(400, "resource_missing", "no such token", "token")
            # The provider's own clock: it knows nothing of our simulated test clocks.
            outcome = self.decide(token, card, idempotency_key, datetime.now(UTC).date())
            # The card network round trip: the window in which a duplicate would slip in without the lock.
            await asyncio.sleep(self.latency_s)
            charge = Charge(
                id=f"ch_{secrets.token_hex(12)}", token=token, amount=amount, currency=currency,
                description=description, idempotency_key=idempotency_key, outcome=outcome,
                brand=card.details.brand.value, last4=card.details.last4, created=int(time.time()),
            )
            self.charges[charge.id] = charge
            self.charge_ids_by_key[idempotency_key] = charge.id
            self.counters.charges += 1
            if outcome.status == "succeeded":
                self.counters.charges_succeeded += 1
                self.counters.amount_captured += amount
            return charge, True

    def charge_by_key(self, idempotency_key: str) -> Charge | None:
        charge_id = self.charge_ids_by_key.get(idempotency_key)
        return self.charges[charge_id] if charge_id else None

    async def create_refund(self, charge_id: str, amount: int, idempotency_key: str) -> Refund:
        """Refund part or all of a succeeded charge, never more than is left of it; idempotent on the key."""
        self.counters.refund_calls += 1
        # Key lock outside, charge lock inside (always in that order): two different keys must not both
        # refund the last remaining amount of one charge.
        async with self._lock(f"refund:{idempotency_key}"), self._lock(f"refund-charge:{charge_id}"):
            existing_id = self.refund_ids_by_key.get(idempotency_key)
            if existing_id is not None:
                existing = self.refunds[existing_id]
                if (existing.charge_id, existing.amount) != (charge_id, amount):
                    raise ProviderError(
                        409, "idempotency_key_in_use",
                        "idempotency_key was already used for a refund with different parameters",
                        "idempotency_key", "idempotency_error",
                    )
                return existing
            charge = self.charges.get(charge_id)
            if charge is None:
                raise ProviderError(404, "resource_missing", "no such charge", "charge_id")
            if charge.outcome.status != "succeeded":
                raise ProviderError(400, "charge_not_refundable", "only a succeeded charge can be refunded",
                                    "charge_id")
            remaining = charge.amount - charge.amount_refunded
            if amount > remaining:
                raise ProviderError(
                    400, "amount_too_large",
                    f"refund amount {amount} exceeds the {remaining} left to refund on this charge", "amount",
                )
            await asyncio.sleep(self.latency_s)
            refund = Refund(id=f"re_{secrets.token_hex(12)}", charge_id=charge_id, amount=amount,
                            currency=charge.currency, idempotency_key=idempotency_key, created=int(time.time()))
            charge.amount_refunded += amount
            self.refunds[refund.id] = refund
            self.refund_ids_by_key[idempotency_key] = refund.id
            self.counters.refunds += 1
            self.counters.amount_refunded += amount
            return refund

    def stats(self) -> dict[str, int]:
        c = self.counters
        return {
            "charges": c.charges,
            "charges_succeeded": c.charges_succeeded,
            "charge_calls": c.charge_calls,
            "refunds": c.refunds,
            "refund_calls": c.refund_calls,
            "tokens": c.tokens,
            "amount_captured": c.amount_captured,
            "amount_refunded": c.amount_refunded,
        }
