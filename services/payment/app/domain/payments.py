"""Payment and refund rules: allowed status transitions, gateway idempotency keys, refundable amounts, and
when to ask the gateway again about a charge whose outcome is unknown. Pure: times are arguments.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

PaymentStatus = Literal["pending", "succeeded", "failed", "unknown"]
RefundStatus = Literal["pending", "succeeded", "failed", "unknown"]
PaymentSource = Literal["api", "invoice", "dunning"]

PAYMENT_STATUSES: tuple[str, ...] = ("pending", "succeeded", "failed", "unknown")
SETTLED: frozenset[str] = frozenset({"succeeded", "failed"})
OPEN: frozenset[str] = frozenset({"pending", "unknown"})

# pending: row written, gateway not yet answered. unknown: the gateway's answer was lost (timeout,
# unreadable); only the reconciler's `retrieve` may settle it. succeeded and failed are final.
ALLOWED_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("pending", "succeeded"),
        ("pending", "failed"),
        ("pending", "unknown"),
        ("unknown", "succeeded"),
        ("unknown", "failed"),
    }
)


class InvalidTransition(ValueError):
    def __init__(self, current: str, new: str) -> None:
        super().__init__(f"a payment cannot go from {current} to {new}")
        self.current = current
        self.new = new


def can_transition(current: str, new: str) -> bool:
    return (current, new) in ALLOWED_TRANSITIONS


def check_transition(current: str, new: str) -> None:
    if not can_transition(current, new):
        raise InvalidTransition(current, new)


# --- gateway idempotency keys ----------------------------------------------------------------------
# Derived from what is being paid and the attempt number, never from a random value: a redelivered
# event, a second replica or a restarted request computes the same key, and the gateway charges once.


def invoice_charge_key(invoice_id: uuid.UUID, attempt: int) -> str:
    return f"inv_{invoice_id}_attempt_{attempt}"


def payment_charge_key(root_payment_id: uuid.UUID, attempt: int) -> str:
    """The key of attempt `attempt` at a one-off payment (attempt 1 is the payment itself)."""
    return f"pay_{root_payment_id}_attempt_{attempt}"


def refund_key(refund_id: uuid.UUID) -> str:
    return f"re_{refund_id}"


def credit_note_refund_key(credit_note_id: uuid.UUID, share: int = 0, payment_id: uuid.UUID | None = None) -> str:
    """The key of a credit note's refund from its `share`-th payment (the first keeps the note's own key)."""
    return f"re_cn_{credit_note_id}" if share == 0 else f"re_cn_{credit_note_id}_{payment_id}"


def overpayment_refund_key(payment_id: uuid.UUID) -> str:
    """A payment pays one invoice: what it paid beyond what the invoice owed is refunded once."""
    return f"re_over_{payment_id}"


# --- refunds -----------------------------------------------------------------------------------------


class RefundRefused(ValueError):
    """A refund that must not happen; `code` is an API error code, `message` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def refundable(amount: int, refunded: int) -> int:
    """What is left to refund of a captured amount, `refunded` counting refunds under way."""
    return max(amount - refunded, 0)


def refund_amount(status: str, amount: int, refunded: int, requested: int | None) -> int:
    """The amount a refund request may take: all that is left by default, never more than that."""
    if status != "succeeded":
        raise RefundRefused("payment_not_refundable", f"only a succeeded payment can be refunded (this one is {status})")
    left = refundable(amount, refunded)
    if left == 0:
        raise RefundRefused("payment_fully_refunded", "this payment has already been refunded in full")
    if requested is None:
        return left
    if requested <= 0:
        raise RefundRefused("invalid_amount", "amount must be a positive integer of minor units")
    if requested > left:
        raise RefundRefused("amount_too_large", f"amount {requested} exceeds the {left} left to refund on this payment")
    return requested


# --- reconciliation ------------------------------------------------------------------------------------


def next_check_at(schedule: Sequence[int], checks_done: int, after: datetime) -> datetime:
    """When to ask the gateway again; past the end of the schedule its last interval repeats."""
    if not schedule:
        raise ValueError("reconcile schedule is empty")
    delay = schedule[min(checks_done, len(schedule) - 1)]
    return after + timedelta(seconds=delay)


def schedule_exhausted(schedule: Sequence[int], checks_done: int) -> bool:
    """True once every scheduled check has been made (`checks_done` counts them)."""
    return checks_done >= len(schedule)
