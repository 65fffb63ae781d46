"""Invoice arithmetic: line totals, credits, amount due, numbering and due dates."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.invoices import (
    InvoiceTotals,
    LineItem,
    amount_due,
    due_at,
    format_number,
    totals,
)

JAN_31 = datetime(2025, 1, 31, tzinfo=UTC)
FEB_28 = datetime(2025, 2, 28, tzinfo=UTC)


def line(amount: int, currency: str = "USD", quantity: int = 1, **extra) -> LineItem:
    return LineItem(description="Pro plan", amount=amount, currency=currency, quantity=quantity, **extra)


class TestTotals:
    def test_sums_lines_in_minor_units(self):
        assert totals([line(4999), line(1000)]) == (5999, 5999)

    def test_quantity_multiplies_the_unit_amount(self):
        seats = line(1500, quantity=3)
        assert seats.line_total == 4500
        assert totals([seats]).subtotal == 4500

    def test_negative_proration_line_reduces_the_total(self):
        charge = line(4999, kind="subscription")
        credit = line(-2000, kind="proration")
        assert totals([charge, credit]) == InvoiceTotals(subtotal=2999, total=2999)

    def test_credits_beyond_charges_give_a_negative_total(self):
        assert totals([line(1000), line(-1500, kind="proration")]).total == -500

    def test_no_lines_total_zero(self):
        assert totals([], "EUR") == (0, 0)

    def test_line_in_another_currency_is_refused(self):
        with pytest.raises(ValueError, match="is in EUR, but the invoice is in USD"):
            totals([line(100, "USD"), line(100, "EUR")])

    def test_lines_must_match_the_given_invoice_currency(self):
        with pytest.raises(ValueError, match="the invoice is in JPY"):
            totals([line(100, "USD")], "jpy")

    def test_currency_is_normalized(self):
        assert line(500, "jpy").currency == "JPY"
        assert totals([line(500, "jpy")], "JPY").total == 500

    @given(
        amounts=st.lists(st.integers(-10**9, 10**9), max_size=20),
        quantities=st.lists(st.integers(1, 100), min_size=20, max_size=20),
    )
    def test_total_is_the_exact_sum_of_amount_times_quantity(self, amounts, quantities):
        lines = [line(amount, quantity=qty) for amount, qty in zip(amounts, quantities)]
        expected = sum(amount * qty for amount, qty in zip(amounts, quantities))
        subtotal, total = totals(lines, "USD")
        assert subtotal == total == expected
        assert isinstance(total, int)


class TestLineItem:
    def test_float_amount_is_refused(self):
        with pytest.raises(TypeError, match="int count of minor units"):
            line(49.99)

    @pytest.mark.parametrize("quantity", [0, -1])
    def test_quantity_must_be_positive(self, quantity):
        with pytest.raises(ValueError, match="quantity"):
            line(100, quantity=quantity)

    def test_unknown_kind_is_refused(self):
        with pytest.raises(ValueError, match="unknown line kind"):
            line(100, kind="tax")

    def test_period_needs_both_ends(self):
        with pytest.raises(ValueError, match="both period_start and period_end"):
            line(100, period_start=JAN_31)

    def test_period_must_end_after_it_starts(self):
        with pytest.raises(ValueError, match="before it starts"):
            line(100, period_start=FEB_28, period_end=JAN_31)

    def test_period_is_stored_in_utc(self):
        plus_two = timezone(timedelta(hours=2))
        item = line(100, period_start=datetime(2025, 1, 31, 2, tzinfo=plus_two), period_end=FEB_28)
        assert item.period_start == datetime(2025, 1, 31, 0, tzinfo=UTC)
        assert item.period_start.tzinfo is UTC

    def test_unknown_currency_is_refused(self):
        with pytest.raises(ValueError, match="unknown currency"):
            line(100, "XYZ")


class TestAmountDue:
    def test_is_total_minus_paid(self):
        assert amount_due(4999, 1000) == 3999

    def test_fully_paid_owes_nothing(self):
        assert amount_due(4999, 4999) == 0

    def test_never_negative_when_credits_exceed_the_total(self):
        assert amount_due(-500, 0) == 0

    def test_never_negative_when_overpaid(self):
        assert amount_due(1000, 1500) == 0

    def test_negative_amount_paid_is_refused(self):
        with pytest.raises(ValueError, match="amount_paid cannot be negative"):
            amount_due(1000, -1)

    @given(total=st.integers(-10**12, 10**12), paid=st.integers(0, 10**12))
    def test_is_never_negative_and_never_more_than_the_total(self, total, paid):
        due = amount_due(total, paid)
        assert due >= 0
        assert due <= max(total, 0)


class TestFormatNumber:
    def test_pads_the_sequence_to_six_digits(self):
        assert format_number("INV", 1) == "INV-000001"

    def test_custom_width(self):
        assert format_number("ACME", 42, width=4) == "ACME-0042"

    def test_sequence_wider_than_width_grows_instead_of_wrapping(self):
        assert format_number("INV", 1_000_000) == "INV-1000000"

    @pytest.mark.parametrize("seq", [0, -3])
    def test_sequence_starts_at_one(self, seq):
        with pytest.raises(ValueError, match="sequence must be an int >= 1"):
            format_number("INV", seq)

    @pytest.mark.parametrize("prefix", ["", "  ", "IN V"])
    def test_prefix_must_be_non_empty_without_spaces(self, prefix):
        with pytest.raises(ValueError, match="prefix"):
            format_number(prefix, 1)

    @given(a=st.integers(1, 10**6 - 1), b=st.integers(1, 10**6 - 1))
    def test_padded_numbers_sort_like_their_sequences(self, a, b):
        assert (format_number("INV", a) < format_number("INV", b)) == (a < b)


class TestDueAt:
    def test_defaults_to_seven_days_after_finalization(self):
        assert due_at(JAN_31) == datetime(2025, 2, 7, tzinfo=UTC)

    def test_net_days_are_configurable(self):
        assert due_at(JAN_31, net_days=30) == datetime(2025, 3, 2, tzinfo=UTC)

    def test_due_on_receipt(self):
        assert due_at(JAN_31, net_days=0) == JAN_31

    def test_result_is_utc(self):
        finalized = datetime(2025, 1, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
        assert due_at(finalized) == datetime(2025, 2, 8, 4, tzinfo=UTC)
        assert due_at(finalized).tzinfo is UTC

    def test_negative_net_days_are_refused(self):
        with pytest.raises(ValueError, match="net_days"):
            due_at(JAN_31, net_days=-1)
