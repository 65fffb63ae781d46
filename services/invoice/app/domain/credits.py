"""Balances and credit notes on integer minor units: what is owed, what a credit refunds, what is left due.

An invoice owes `total - credited` (credit notes lower the obligation) and has received
`paid - refunded` (net of refunds). A credit note may lower the obligation down to zero, never below,
and refunds whatever the customer has then paid beyond the new obligation (never more than the note).
So on a paid invoice the whole credit is refunded, up to what was paid and not yet refunded; on an
unpaid one the credit only lowers the amount due.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.invoices import amount_due
from app.domain.states import InvoiceStatus


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
