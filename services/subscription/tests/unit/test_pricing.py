"""Major-unit prices convert exactly or not at all; MRR normalises to months and rounds once."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.pricing import RecurringAmount, major_to_minor, monthly_recurring_revenue


@pytest.mark.parametrize(
    ("price", "currency", "minor"),
    [("49.99", "USD", 4999), (49.99, "USD", 4999), (0.1, "USD", 10), (5, "USD", 500), ("1200", "JPY", 1200),
     ("1.234", "KWD", 1234), ("19.9", "EUR", 1990), (" 7.00 ", "usd", 700),
     ("5000.50", "HUF", 500050), ("15000", "IDR", 1500000)],  # ISO 4217's minor units, which CLDR counts as 0
)
def test_prices_convert_exactly(price, currency, minor) -> None:
    assert major_to_minor(price, currency) == minor


@pytest.mark.parametrize(
    "price",
    [
        "9.999", 9.999, "12.5", "-1", "abc", "NaN", "Infinity", True, "1e13",
        "1e999999",  # past Decimal's exponent range: was an ArithmeticError, a 500
        "1e-999999999999",  # flushed to 0 by Decimal's default context: was a free plan
        "1." + "0" * 40 + "1",  # more digits than Decimal's default 28: was rounded to 1.00
    ],
)
def test_inexact_or_invalid_prices_are_refused(price) -> None:
    currency = "JPY" if price == "12.5" else "USD"
    with pytest.raises(ValueError):
        major_to_minor(price, currency)


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=10**11))
def test_any_cent_amount_written_as_a_float_round_trips(cents: int) -> None:
    as_float = float(Decimal(cents) / 100)
    assert major_to_minor(as_float, "USD") == cents


def test_mrr_divides_by_months_per_period_and_rounds_the_sum_half_up() -> None:
    amounts = [
        RecurringAmount("USD", "month", 1, 1000),
        RecurringAmount("USD", "year", 1, 12006),  # 1000.5
        RecurringAmount("USD", "month", 3, 3000),  # 1000
        RecurringAmount("EUR", "year", 2, 24001),  # 1000.04
    ]
    assert monthly_recurring_revenue(amounts) == {"EUR": 1000, "USD": 3001}


def test_mrr_of_nothing_is_empty() -> None:
    assert monthly_recurring_revenue([]) == {}
