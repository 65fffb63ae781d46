"""Card number, expiry and CVC checks, plus a keyed fingerprint to recognise a card without storing it.

Pure functions: "today" is an argument, so expiry checks work the same under a simulated clock.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

MIN_DIGITS = 12
MAX_DIGITS = 19
# Issuers do not print cards valid for decades; a year this far ahead is a typo.
MAX_YEARS_AHEAD = 50

_SEPARATORS = str.maketrans("", "", " -")


class CardBrand(StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    UNKNOWN = "unknown"


class CardValidationError(ValueError):
    """A card field is unusable; `field` names the request field, `message` says why (never echoes the card)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class CardDetails:
    """What may be kept about a card: never the number or the CVC."""

    brand: CardBrand
    last4: str
    exp_month: int
    exp_year: int


def normalize_card_number(number: str) -> str:
    """The digits of a card number with spaces and dashes removed; CardValidationError if it is not one."""
    if not isinstance(number, str):
        raise CardValidationError("card_number", "card_number must be a string of digits")
    digits = number.strip().translate(_SEPARATORS)
    # isascii() too: str.isdigit() accepts superscripts and non-Latin digits.
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise CardValidationError("card_number", "card_number may contain only digits, spaces and dashes")
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise CardValidationError(
            "card_number", f"card_number must have {MIN_DIGITS} to {MAX_DIGITS} digits, got {len(digits)}"
        )
    return digits


def _luhn_sum(digits: str) -> int:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total


def luhn_valid(digits: str) -> bool:
    """True when a string of ASCII digits passes the Luhn (mod 10) check."""
    return bool(digits) and digits.isascii() and digits.isdigit() and _luhn_sum(digits) % 10 == 0


def luhn_check_digit(payload: str) -> str:
    """The digit that makes `payload + digit` pass the Luhn check (for building test cards)."""
    if not (payload.isascii() and payload.isdigit()):
        raise ValueError("payload must be ASCII digits")
    return str((10 - _luhn_sum(payload + "0") % 10) % 10)


def _prefix(digits: str, length: int) -> int:
    return int(digits[:length]) if len(digits) >= length else -1


def detect_brand(digits: str) -> CardBrand:
    """The card network, from the issuer prefix of a normalized number."""
    if digits.startswith(("34", "37")):
        return CardBrand.AMEX
    if digits.startswith("4"):
        return CardBrand.VISA
    if 51 <= _prefix(digits, 2) <= 55 or 2221 <= _prefix(digits, 4) <= 2720:
        return CardBrand.MASTERCARD
    if (
        digits.startswith(("6011", "65"))
        or 644 <= _prefix(digits, 3) <= 649
        or 622126 <= _prefix(digits, 6) <= 622925
    ):
        return CardBrand.DISCOVER
    return CardBrand.UNKNOWN


def _check_int(field: str, value: object) -> int:
    # bool is an int subclass; True is not a month.
    if isinstance(value, bool) or not isinstance(value, int):
        raise CardValidationError(field, f"{field} must be an integer")
    return value


def normalize_exp_year(exp_year: int) -> int:
    """Two-digit years (as printed on cards) mean 20YY; four-digit years are kept."""
    year = _check_int("exp_year", exp_year)
    if 0 <= year <= 99:
        return 2000 + year
    if 2000 <= year <= 9999:
        return year
    raise CardValidationError("exp_year", "exp_year must be a two- or four-digit year")


def is_expired(exp_month: int, exp_year: int, today: date) -> bool:
    """A card is valid through the last day of its expiry month."""
    return (exp_year, exp_month) < (today.year, today.month)


def validate_expiry(exp_month: int, exp_year: int, today: date) -> tuple[int, int]:
    """(month, four-digit year) of an expiry that has not passed by `today`; CardValidationError otherwise."""
    month = _check_int("exp_month", exp_month)
    if not 1 <= month <= 12:
        raise CardValidationError("exp_month", "exp_month must be between 1 and 12")
    year = normalize_exp_year(exp_year)
    if is_expired(month, year, today):
        field = "exp_year" if year < today.year else "exp_month"
        raise CardValidationError(field, f"card expired at the end of {month:02d}/{year}")
    if year > today.year + MAX_YEARS_AHEAD:
        raise CardValidationError("exp_year", f"exp_year is more than {MAX_YEARS_AHEAD} years ahead")
    return month, year


def validate_cvc(cvc: str, brand: CardBrand) -> None:
    """Three digits, four for American Express."""
    expected = 4 if brand is CardBrand.AMEX else 3
    if not isinstance(cvc, str):
        raise CardValidationError("cvc", "cvc must be a string of digits")
    value = cvc.strip()
    if len(value) != expected or not (value.isascii() and value.isdigit()):
        raise CardValidationError("cvc", f"cvc must be {expected} digits for {brand.value} cards")


def validate_card(number: str, exp_month: int, exp_year: int, cvc: str, today: date) -> CardDetails:
    """Check a card as entered and return what may be kept about it; CardValidationError on the first problem."""
    digits = normalize_card_number(number)
    if not luhn_valid(digits):
        raise CardValidationError("card_number", "card_number fails the Luhn check")
    brand = detect_brand(digits)
    month, year = validate_expiry(exp_month, exp_year, today)
    validate_cvc(cvc, brand)
    return CardDetails(brand=brand, last4=digits[-4:], exp_month=month, exp_year=year)


def fingerprint(number: str, key: bytes) -> str:
    """HMAC-SHA256 (hex) of the normalized number: equal for the same card, useless without the key."""
    # A bare hash of a card number is brute-forceable (few unknown digits), hence the secret key.
    if not key:
        raise ValueError("fingerprint key must be non-empty")
    digits = normalize_card_number(number)
    return hmac.new(key, digits.encode("ascii"), hashlib.sha256).hexdigest()
