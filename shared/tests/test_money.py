"""Minor units are ISO 4217's (as payment providers count them), and formatting shows every one of them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_shared.money import format_money, minor_unit_exponent


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("USD", 2), ("JPY", 0), ("KWD", 3), ("CLF", 4),
     ("HUF", 2), ("IDR", 2), ("COP", 2),  # CLDR says 0 (what people pay cash in); ISO and card networks say 2
     ("DEM", 2)],  # withdrawn, no longer in ISO's table: CLDR's digits, so a stored amount still reads
)
def test_minor_units_are_iso_4217s(currency: str, exponent: int) -> None:
    assert minor_unit_exponent(currency) == exponent


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "shown"),
    [(4999, "USD", "en_US", "$49.99"), (500050, "HUF", "en_US", "HUF5,000.50"), (500, "JPY", "en_US", "¥500"),
     (1234, "KWD", "en_US", "KWD1.234"), (123456, "EUR", "de_DE", "1.234,56\xa0€"), (-1234, "USD", "en_US", "-$12.34"),
     (500000, "HUF", "hu_HU", "5\xa0000,00\xa0Ft")],
)
def test_amounts_are_shown_per_currency_and_locale(amount: int, currency: str, locale: str, shown: str) -> None:
    assert format_money(amount, currency, locale) == shown


@given(amount=st.integers(0, 10**12), currency=st.sampled_from(["USD", "JPY", "KWD", "HUF", "IDR", "CLF"]),
       locale=st.sampled_from(["en_US", "de_DE", "hu_HU", "ja_JP"]))
def test_every_minor_unit_is_shown_none_rounded_away(amount: int, currency: str, locale: str) -> None:
    exponent = minor_unit_exponent(currency)
    digits = re.sub(r"\D", "", format_money(amount, currency, locale))
    assert digits == str(amount).zfill(exponent + 1)
