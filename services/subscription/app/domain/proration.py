"""Proration in whole UTC days (the Kill Bill convention), rounded half-up once per line in integer minor units.

Choices, so every service prorates the same way:
- A period [start, end) is a whole number of UTC days: days_in_period = (end.date() - start.date()).days.
  Periods from `periods.py` always are (both ends share the anchor's time of day); others are a ValueError.
- used_days = whole days elapsed from the period start to the instant, i.e. floor((at - start) / 1 day).
  For periods starting at midnight UTC this is (at.date() - start.date()).days: cancelling on Apr 2 of
  [Apr 1, May 1) uses 1 day and leaves 29 of 30 unused. Counting elapsed days rather than calendar dates
  keeps anchors with a time of day fair: every instant inside the period leaves 1..days_in_period unused days.
- unused_days = days_in_period - used_days. At the period start the whole price is credited; anywhere on the
  last day, 1/days_in_period is. The end instant belongs to the next period, so prorating there (or before
  the start) is a ValueError, not a zero line: the caller has the wrong period.
- amount = round_half_up(price * days / days_in_period), computed with integers only; the credit and the
  charge of a plan change are rounded separately (so credit + charge of complementary parts is price ± 1).
- A credit never exceeds what was paid for the period: min(computed, amount_paid); nothing paid, no credit.
- Sign convention: ProrationLine.amount is signed like an invoice line. Negative = credit to the customer
  (unused time of the old plan), positive = charge (remaining time of the new plan).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from billing_shared.money import Money, normalize_currency

from app.domain.periods import Period, require_aware

_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ProrationLine:
    """One prorated line: amount in signed minor units (negative = credit), with the days it covers."""

    amount: int
    currency: str
    unused_days: int
    days_in_period: int
    description: str

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)


def days_in_period(period: Period) -> int:
    length = period.end - period.start
    if length % _DAY:
        raise ValueError(f"period [{period.start.isoformat()}, {period.end.isoformat()}) is not a whole number of days")
    return length // _DAY


def used_days(period: Period, at: datetime) -> int:
    """Whole days of the period elapsed at `at`; ValueError unless start <= at < end."""
    at_utc = require_aware(at, "proration instant")
    if at_utc not in period:
        raise ValueError(
            f"proration instant {at_utc.isoformat()} is outside the period "
            f"[{period.start.isoformat()}, {period.end.isoformat()})"
        )
    return (at_utc - period.start) // _DAY


def unused_days(period: Period, at: datetime) -> int:
    return days_in_period(period) - used_days(period, at)


def prorate(amount: int, days: int, of_days: int) -> int:
    """amount * days / of_days rounded half-up to the minor unit, in integers (no float ever touches money)."""
    _require_minor_units(amount, "amount")
    if of_days <= 0 or not 0 <= days <= of_days:
        raise ValueError(f"cannot prorate {days} of {of_days} days")
    return (2 * amount * days + of_days) // (2 * of_days)


def unused_credit(
    price: int, amount_paid: int, currency: str, period: Period, at: datetime, plan_name: str
) -> ProrationLine:
    """Credit (negative amount) for the plan's unused days at `at`, never more than was paid for the period."""
    _require_minor_units(amount_paid, "amount_paid")
    total, unused = days_in_period(period), unused_days(period, at)
    credit = min(prorate(price, unused, total), amount_paid)
    return ProrationLine(
        amount=-credit,
        currency=normalize_currency(currency),
        unused_days=unused,
        days_in_period=total,
        description=f"Unused time: {unused} of {total} days of {plan_name}",
    )


def remaining_charge(price: int, currency: str, period: Period, at: datetime, plan_name: str) -> ProrationLine:
    """Charge (positive amount) for the plan over the rest of the period from `at`."""
    total, unused = days_in_period(period), unused_days(period, at)
    return ProrationLine(
        amount=prorate(price, unused, total),
        currency=normalize_currency(currency),
        unused_days=unused,
        days_in_period=total,
        description=f"Remaining time: {unused} of {total} days of {plan_name}",
    )


def plan_change_lines(
    old_price: int,
    old_paid: int,
    new_price: int,
    currency: str,
    period: Period,
    at: datetime,
    old_name: str,
    new_name: str,
) -> list[ProrationLine]:
    """[credit for the old plan's unused days (<= 0), charge for the new plan's remaining days (>= 0)].

    Both lines are always returned (a zero credit still tells the customer why nothing was credited);
    their sum is what the change costs now, negative when it is a net credit.
    """
    return [
        unused_credit(old_price, old_paid, currency, period, at, old_name),
        remaining_charge(new_price, currency, period, at, new_name),
    ]


def _require_minor_units(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative int of minor units, got {value!r}")
