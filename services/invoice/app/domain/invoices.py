"""Invoice arithmetic on integer minor units: line items, totals, amount due, numbering and due dates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NamedTuple, get_args

from billing_shared.clock import ensure_utc
from billing_shared.money import normalize_currency

LineKind = Literal["subscription", "proration", "one_off"]
LINE_KINDS: frozenset[str] = frozenset(get_args(LineKind))

DEFAULT_NET_DAYS = 7


def _require_int(name: str, value: object) -> int:
    # bool is an int subclass; True cents is always a bug.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int count of minor units, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class LineItem:
    """One invoice line. `amount` is per unit, in minor units; negative for credits (e.g. proration)."""

    description: str
    amount: int
    currency: str
    quantity: int = 1
    period_start: datetime | None = None
    period_end: datetime | None = None
    kind: LineKind = "one_off"

    def __post_init__(self) -> None:
        if not self.description.strip():
            raise ValueError("a line item needs a description")
        _require_int("amount", self.amount)
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int) or self.quantity < 1:
            raise ValueError(f"quantity must be a positive int, got {self.quantity!r}")
        if self.kind not in LINE_KINDS:
            raise ValueError(f"unknown line kind {self.kind!r}: expected one of {sorted(LINE_KINDS)}")
        object.__setattr__(self, "currency", normalize_currency(self.currency))
        if (self.period_start is None) != (self.period_end is None):
            raise ValueError("a line period needs both period_start and period_end, or neither")
        if self.period_start is not None and self.period_end is not None:
            start, end = ensure_utc(self.period_start), ensure_utc(self.period_end)
            if end <= start:
                raise ValueError(
                    f"line period ends ({end.isoformat()}) before it starts ({start.isoformat()})"
                )
            object.__setattr__(self, "period_start", start)
            object.__setattr__(self, "period_end", end)

    @property
    def line_total(self) -> int:
        return self.amount * self.quantity


class InvoiceTotals(NamedTuple):
    subtotal: int
    total: int


def totals(lines: Iterable[LineItem], currency: str | None = None) -> InvoiceTotals:
    """Sum the lines, all of which must be in `currency` (or, if None, in one common currency).

    total equals subtotal until discounts and tax exist; they are kept apart so callers and the
    rendered page need not change then. A negative total (credits exceed charges) is returned as is:
    amount_due clamps it, and the invoice service turns the surplus into a credit note.
    """
    expected = normalize_currency(currency) if currency is not None else None
    subtotal = 0
    for line in lines:
        if expected is None:
            expected = line.currency
        elif line.currency != expected:
            raise ValueError(
                f"line {line.description!r} is in {line.currency}, but the invoice is in {expected}"
            )
        subtotal += line.line_total
    return InvoiceTotals(subtotal=subtotal, total=subtotal)


def amount_due(total: int, amount_paid: int) -> int:
    """What the customer still owes: never negative, even when credits or overpayment exceed the total."""
    _require_int("total", total)
    if _require_int("amount_paid", amount_paid) < 0:
        raise ValueError(f"amount_paid cannot be negative, got {amount_paid}")
    return max(total - amount_paid, 0)


def format_number(prefix: str, seq: int, width: int = 6) -> str:
    """Invoice number from a prefix and a sequence: ("INV", 1) -> "INV-000001".

    Sequences beyond `width` digits grow the number rather than wrap (INV-1000000).
    """
    cleaned = prefix.strip()
    if not cleaned or any(char.isspace() for char in cleaned):
        raise ValueError(f"invoice number prefix must be non-empty without spaces, got {prefix!r}")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ValueError(f"invoice sequence must be an int >= 1, got {seq!r}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be an int >= 1, got {width!r}")
    return f"{cleaned}-{seq:0{width}d}"


def due_at(finalized_at: datetime, net_days: int = DEFAULT_NET_DAYS) -> datetime:
    """When a finalized invoice falls due: `net_days` after finalization, in UTC."""
    if isinstance(net_days, bool) or not isinstance(net_days, int) or net_days < 0:
        raise ValueError(f"net_days must be a non-negative int, got {net_days!r}")
    return ensure_utc(finalized_at) + timedelta(days=net_days)
