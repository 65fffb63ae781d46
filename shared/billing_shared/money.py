"""Money as an integer count of minor units plus an ISO 4217 code; never a float.

A minor unit is ISO 4217's (the `iso4217` package's copy of the ISO table), as card networks and payment providers
count them: 1 HUF is 100 minor units. CLDR (Babel) counts some currencies in the units people pay cash in (HUF, IDR,
COP: 0 decimals), which would make an amount 100 times what the provider charges; Babel only draws the numbers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

import iso4217
from babel.core import Locale, get_global
from babel.numbers import (
    NumberPattern,
    format_currency,
    get_currency_precision,
    get_territory_currencies,
    list_currencies,
)


@lru_cache(maxsize=1)
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def is_known_currency(code: str) -> bool:
    return code in _known_currencies()


def normalize_currency(code: str) -> str:
    """Upper-case and validate an ISO 4217 code; ValueError for anything else."""
    if not isinstance(code, str):
        raise ValueError("currency must be a three-letter ISO 4217 code")
    upper = code.strip().upper()
    if len(upper) != 3 or not upper.isalpha() or not is_known_currency(upper):
        raise ValueError(f"unknown currency {code!r}: expected an ISO 4217 code such as 'USD'")
    return upper


@lru_cache(maxsize=1)
def _tender_today() -> frozenset[str]:
    return frozenset(
        code for territory in get_global("territory_currencies") for code in get_territory_currencies(territory)
    )


def chargeable_currency(code: str) -> str:
    """`normalize_currency`, for new prices and charges: also refuses codes that are not legal tender anywhere
    today (CLDR's territory currencies): XXX ("no currency"), XTS (testing), XAU (gold), DEM (withdrawn).
    Stored amounts keep using `normalize_currency`, so a currency withdrawn later stays readable."""
    upper = normalize_currency(code)
    if upper not in _tender_today():
        raise ValueError(f"{upper} is not legal tender anywhere today: prices and charges need a currency in use")
    return upper


@lru_cache(maxsize=None)
def minor_unit_exponent(currency: str) -> int:
    """ISO 4217's digits after the decimal point: 2 for USD and HUF, 0 for JPY, 3 for KWD.

    CLDR's digits only for a code ISO does not list any more (a withdrawn currency, still readable)."""
    code = normalize_currency(currency)
    try:
        exponent = iso4217.Currency(code).exponent
    except ValueError:
        exponent = None
    return get_currency_precision(code) if exponent is None else exponent


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units (cents for USD) of one currency."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("Money.amount must be an int count of minor units")
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    def _same_currency(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def format(self, locale: str = "en_US") -> str:
        return format_money(self.amount, self.currency, locale)


def format_money(amount: int, currency: str, locale: str = "en_US") -> str:
    """Format minor units for people, per currency and locale (en_US: 4999 USD is '$49.99', 500050 HUF 'HUF5,000.50').

    Exact (Decimal) and never rounded: every minor unit is shown; babel does the symbol, grouping and layout."""
    exponent = minor_unit_exponent(currency)
    value = Decimal(amount).scaleb(-exponent)
    return format_currency(value, currency, format=_currency_pattern(locale, exponent), locale=locale,
                           currency_digits=False)


@lru_cache(maxsize=256)
def _currency_pattern(locale: str, digits: int) -> NumberPattern:
    """The locale's currency pattern, with exactly `digits` decimals (ISO's, where CLDR's can be fewer)."""
    pattern = copy.copy(Locale.parse(locale).currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    return pattern
