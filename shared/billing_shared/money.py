"""Money as an integer count of minor units plus an ISO 4217 code; never a float."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from babel.core import get_global
from babel.numbers import format_currency, get_currency_precision, get_territory_currencies, list_currencies


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


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point: 2 for USD, 0 for JPY, 3 for KWD."""
    return get_currency_precision(normalize_currency(currency))


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
    """Format minor units for people, per currency and locale: 4999 USD -> '$49.99'."""
    exponent = minor_unit_exponent(currency)
    # Decimal keeps this exact; babel does the symbol and grouping.
    from decimal import Decimal

    value = Decimal(amount).scaleb(-exponent)
    return format_currency(value, currency, locale=locale)
