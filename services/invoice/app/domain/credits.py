"""Balances and credit notes on integer minor units: what is owed, what a credit refunds, what is left due.

An invoice owes `total - credited` (credit notes lower the obligation) and has received
`paid - refunded` (net of refunds). A credit note may lower the obligation down to zero, never below,
and refunds whatever the customer has then paid beyond the new obligation (never more than the note).
So on a paid invoice the whole credit is refunded, up to what was paid and not yet refunded; on an
unpaid one the credit only lowers the amount due. A payment settles at most what is due; money beyond it
(an invoice paid twice, or paid after a void) is refunded, so `paid - refunded` never exceeds the obligation
through a payment. A refund is split over the invoice's payments (`allocate_refund`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from app.domain.invoices import amount_due
from app.domain.states import InvoiceStatus

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Balance:
    total: int
    paid: int = 0
    credited: int = 0
    refunded: int = 0

    def __post_init__(self) -> None:
        for name in ("total", "paid", "credited", "refunded"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int of minor units, got {value!r}")
        if min(self.paid, self.credited, self.refunded) < 0:
            raise ValueError("paid, credited and refunded cannot be negative")

    @property
    def obligation(self) -> int:
        return self.total - self.credited

    @property
    def net_paid(self) -> int:
        return self.paid - self.refunded

    @property
    def due(self) -> int:
        return amount_due(self.obligation, max(self.net_paid, 0))

    @property
    def creditable(self) -> int:
        """The most a new credit note can still credit."""
        return max(self.obligation, 0)


@dataclass(frozen=True, slots=True)
class CreditDecision:
    amount: int  # what the note credits (requested, capped at what is still creditable)
    refund_amount: int  # what goes back to the customer's payment method
    balance_after: Balance
    status_after: InvoiceStatus

    @property
    def refund_due(self) -> bool:
        return self.refund_amount > 0


class NothingToCredit(ValueError):
    """The invoice cannot take this credit (nothing left to credit, or it is a draft or void)."""


def apply_credit(status: InvoiceStatus | str, balance: Balance, requested: int) -> CreditDecision:
    """Decide a credit note of `requested` minor units on an invoice with this status and balance.

    An unpaid invoice whose amount due falls to zero is settled: paid if money was received, void if
    the credit covers all of it and nothing was ever paid.
    """
    current = InvoiceStatus(status)
    if isinstance(requested, bool) or not isinstance(requested, int) or requested <= 0:
        raise ValueError(f"a credit must be a positive int of minor units, got {requested!r}")
    if current in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
        raise NothingToCredit(f"a {current.value} invoice cannot be credited")
    amount = min(requested, balance.creditable)
    if amount <= 0:
        raise NothingToCredit("the invoice has been credited in full already")
    new_obligation = balance.obligation - amount
    refund = min(amount, max(balance.net_paid - new_obligation, 0))
    after = Balance(balance.total, balance.paid, balance.credited + amount, balance.refunded + refund)
    status_after = current
    if current in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE) and after.due == 0:
        status_after = InvoiceStatus.PAID if balance.paid > 0 else InvoiceStatus.VOID
    return CreditDecision(amount=amount, refund_amount=refund, balance_after=after, status_after=status_after)


@dataclass(frozen=True, slots=True)
class PaymentDecision:
    applied: int  # what settles the amount due
    excess: int  # what the invoice did not owe: refunded to the customer
    balance_after: Balance


def apply_payment(status: InvoiceStatus | str, balance: Balance, amount: int) -> PaymentDecision:
    """Apply a payment of `amount` minor units: an open (or uncollectible) invoice takes up to what it still
    owes; the rest, and all of a payment to an invoice that owes nothing (paid, void), is excess, recorded as
    received and refunded at once."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError(f"a payment must be a non-negative int of minor units, got {amount!r}")
    owing = InvoiceStatus(status) in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE)
    applied = min(amount, balance.due) if owing else 0
    excess = amount - applied
    after = Balance(balance.total, balance.paid + amount, balance.credited, balance.refunded + excess)
    return PaymentDecision(applied=applied, excess=excess, balance_after=after)


def allocate_refund(amount: int, refundable: Sequence[tuple[T, int]]) -> list[tuple[T, int]]:
    """Split a refund over payments, given as (payment, what is left to refund of it) in the order to take them:
    each gives what it can until `amount` is covered. The shares add up to less only if the payments hold less."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError(f"a refund must be a non-negative int of minor units, got {amount!r}")
    shares: list[tuple[T, int]] = []
    left = amount
    for payment, available in refundable:
        if left == 0:
            break
        share = min(left, max(available, 0))
        if share > 0:
            shares.append((payment, share))
            left -= share
    return shares
