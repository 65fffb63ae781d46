"""Prices given in major units (the demo's `price`), converted exactly, and monthly recurring revenue.

Only exact decimals are accepted: a price with more decimal places than the currency has minor units
(9.999 USD) is refused instead of rounded, and nothing passes through binary floating point.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import (
    Clamped,
    Context,
    Decimal,
    DecimalException,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    Subnormal,
    Underflow,
    localcontext,
)
from fractions import Fraction

from billing_shared.money import minor_unit_exponent, normalize_currency

MAX_MINOR_UNITS = 10**12 - 1
# Decimal's default context rounds to 28 digits, overflows past 1e999999 and flushes tiny values to zero, each
# silently or as an ArithmeticError: here every one of those is an error, so a price converts exactly or not.
_EXACT = Context(prec=60, traps=[Clamped, Inexact, InvalidOperation, Overflow, Rounded, Subnormal, Underflow])
_MONTHS = {"month": 1, "year": 12}


def major_to_minor(price: str | int | float | Decimal, currency: str) -> int:
    """'49.99' USD -> 4999. ValueError for negatives, non-numbers, or more digits than the currency allows.

    A JSON number arrives as a Python float: its shortest repr is the literal the client wrote (49.99),
    so Decimal(repr(float)) recovers the decimal exactly without ever computing in binary floating point.
    """
    if isinstance(price, bool):
        raise ValueError("price must be a decimal number such as 49.99")
    if isinstance(price, float):
        price = repr(price)
    try:
        value = Decimal(str(price).strip()) if not isinstance(price, Decimal) else price
    except InvalidOperation:
        raise ValueError(f"price {price!r} is not a decimal number such as 49.99") from None
    if not value.is_finite():
        raise ValueError("price must be a finite decimal number")
    if value < 0:
        raise ValueError("price must not be negative")
    exponent = minor_unit_exponent(normalize_currency(currency))
    try:
        with localcontext(_EXACT):
            minor = value.scaleb(exponent)
    except DecimalException:
        raise ValueError(f"price {price} is out of range or has too many digits") from None
    if minor != minor.to_integral_value():
        raise ValueError(f"price {price} has more than {exponent} decimal places, the minor unit of {currency}")
    amount = int(minor)
    if amount > MAX_MINOR_UNITS:
        raise ValueError("price is too large")
    return amount


@dataclass(frozen=True, slots=True)
class RecurringAmount:
    """The summed price of some subscriptions that share a currency and a billing interval."""

    currency: str
    interval: str
    interval_count: int
    amount: int


def monthly_recurring_revenue(amounts: Iterable[RecurringAmount]) -> dict[str, int]:
    """MRR per currency: each amount divided by its months per period, summed exactly, rounded half-up once."""
    totals: dict[str, Fraction] = {}
    for item in amounts:
        months = _MONTHS[item.interval] * item.interval_count
        totals[item.currency] = totals.get(item.currency, Fraction(0)) + Fraction(item.amount, months)
    return {currency: _round_half_up(total) for currency, total in sorted(totals.items())}


def _round_half_up(value: Fraction) -> int:
    return (2 * value.numerator + value.denominator) // (2 * value.denominator)
