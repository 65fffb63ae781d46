"""Proration in whole UTC days, rounded half-up per line, never crediting more than was paid."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.periods import Period, period_at
from app.domain.proration import (
    ProrationLine,
    days_in_period,
    plan_change_lines,
    prorate,
    remaining_charge,
    unused_credit,
    used_days,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


APRIL = Period(utc(2024, 4, 1), utc(2024, 5, 1))  # 30 days


class TestRounding:
    def test_half_rounds_up(self) -> None:
        assert prorate(1, 1, 2) == 1  # 0.5
        assert prorate(3, 1, 2) == 2  # 1.5

    def test_below_half_rounds_down(self) -> None:
        assert prorate(1000, 1, 3) == 333  # 333.33

    def test_above_half_rounds_up(self) -> None:
        assert prorate(1000, 29, 30) == 967  # 966.67

    def test_whole_results_are_exact(self) -> None:
        assert prorate(3000, 10, 30) == 1000

    def test_negative_amount_is_refused(self) -> None:
        with pytest.raises(ValueError, match="non-negative"):
            prorate(-1, 1, 2)


class TestCancelCredit:
    def test_cancel_on_day_two_credits_29_of_30_days(self) -> None:
        line = unused_credit(1000, 1000, "usd", APRIL, utc(2024, 4, 2, 15), "Pro")
        assert line == ProrationLine(
            amount=-967,
            currency="USD",
            unused_days=29,
            days_in_period=30,
            description="Unused time: 29 of 30 days of Pro",
        )

    def test_cancel_at_period_start_credits_the_full_price(self) -> None:
        assert unused_credit(1000, 1000, "USD", APRIL, APRIL.start, "Pro").amount == -1000

    def test_cancel_at_last_instant_credits_one_day(self) -> None:
        last_instant = APRIL.end - timedelta(microseconds=1)
        line = unused_credit(1000, 1000, "USD", APRIL, last_instant, "Pro")
        assert (line.amount, line.unused_days) == (-33, 1)  # 33.33

    def test_credit_never_exceeds_what_was_paid(self) -> None:
        assert unused_credit(1000, 500, "USD", APRIL, APRIL.start, "Pro").amount == -500

    def test_nothing_paid_means_no_credit(self) -> None:
        line = unused_credit(1000, 0, "USD", APRIL, utc(2024, 4, 2), "Pro")
        assert line.amount == 0
        assert line.unused_days == 29

    def test_money_view_carries_amount_and_currency(self) -> None:
        money = unused_credit(1000, 1000, "EUR", APRIL, utc(2024, 4, 2), "Pro").money
        assert (money.amount, money.currency) == (-967, "EUR")

    def test_zero_decimal_currency_rounds_to_whole_units(self) -> None:
        # JPY has no minor unit: 1000 yen * 29/30 = 966.67 -> 967 yen, same integer rule.
        assert unused_credit(1000, 1000, "JPY", APRIL, utc(2024, 4, 2), "Pro").amount == -967

    def test_february_has_28_days_in_a_common_year(self) -> None:
        february = period_at(utc(2023, 1, 31), "month", 1, 1)  # [Feb 28, Mar 31)
        assert days_in_period(february) == 31
        assert days_in_period(Period(utc(2023, 2, 1), utc(2023, 3, 1))) == 28


class TestTimeOfDayAnchors:
    PERIOD = Period(utc(2024, 4, 1, 18), utc(2024, 5, 1, 18))

    def test_days_are_counted_from_the_period_start_instant(self) -> None:
        assert used_days(self.PERIOD, utc(2024, 4, 2, 17, 59)) == 0
        assert used_days(self.PERIOD, utc(2024, 4, 2, 18)) == 1

    def test_last_hours_before_the_end_still_credit_one_day(self) -> None:
        assert unused_credit(3000, 3000, "USD", self.PERIOD, utc(2024, 5, 1, 10), "Pro").amount == -100


class TestPlanChange:
    def test_upgrade_credits_old_plan_and_charges_new_plan_for_the_same_days(self) -> None:
        credit, charge = plan_change_lines(1000, 1000, 3000, "USD", APRIL, utc(2024, 4, 16), "Basic", "Pro")
        assert credit == ProrationLine(-500, "USD", 15, 30, "Unused time: 15 of 30 days of Basic")
        assert charge == ProrationLine(1500, "USD", 15, 30, "Remaining time: 15 of 30 days of Pro")
        assert credit.amount + charge.amount == 1000

    def test_downgrade_nets_to_a_credit(self) -> None:
        lines = plan_change_lines(3000, 3000, 1000, "USD", APRIL, utc(2024, 4, 16), "Pro", "Basic")
        assert sum(line.amount for line in lines) == -1000

    def test_unpaid_old_plan_gives_a_zero_credit_line(self) -> None:
        credit, charge = plan_change_lines(1000, 0, 3000, "USD", APRIL, utc(2024, 4, 16), "Basic", "Pro")
        assert (credit.amount, charge.amount) == (0, 1500)

    def test_remaining_charge_rounds_on_its_own(self) -> None:
        assert remaining_charge(1000, "USD", APRIL, utc(2024, 4, 2), "Pro").amount == 967


class TestValidation:
    def test_instant_at_period_end_belongs_to_the_next_period(self) -> None:
        with pytest.raises(ValueError, match="outside the period"):
            unused_credit(1000, 1000, "USD", APRIL, APRIL.end, "Pro")

    def test_instant_before_period_start_is_refused(self) -> None:
        with pytest.raises(ValueError, match="outside the period"):
            remaining_charge(1000, "USD", APRIL, APRIL.start - timedelta(seconds=1), "Pro")

    def test_naive_instant_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            unused_credit(1000, 1000, "USD", APRIL, datetime(2024, 4, 2), "Pro")

    def test_period_of_partial_days_is_refused(self) -> None:
        ragged = Period(utc(2024, 4, 1), utc(2024, 5, 1, 12))
        with pytest.raises(ValueError, match="whole number of days"):
            unused_credit(1000, 1000, "USD", ragged, utc(2024, 4, 2), "Pro")

    def test_negative_amount_paid_is_refused(self) -> None:
        with pytest.raises(ValueError, match="amount_paid"):
            unused_credit(1000, -1, "USD", APRIL, utc(2024, 4, 2), "Pro")

    def test_unknown_currency_is_refused(self) -> None:
        with pytest.raises(ValueError, match="currency"):
            remaining_charge(1000, "XYZ", APRIL, utc(2024, 4, 2), "Pro")


anchors = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 12, 31, 23, 59, 59), timezones=st.just(UTC)
)
prices = st.integers(min_value=0, max_value=10**9)


@st.composite
def periods_and_instants(draw: st.DrawFn) -> tuple[Period, datetime]:
    period = period_at(draw(anchors), draw(st.sampled_from(["month", "year"])), draw(st.integers(1, 3)), 0)
    last_offset = period.end - period.start - timedelta(microseconds=1)
    offset = draw(st.timedeltas(min_value=timedelta(0), max_value=last_offset))
    return period, period.start + offset


class TestProperties:
    @settings(max_examples=200, deadline=None)
    @given(price=prices, paid=prices, case=periods_and_instants())
    def test_credit_is_between_zero_and_what_was_paid(
        self, price: int, paid: int, case: tuple[Period, datetime]
    ) -> None:
        period, at = case
        credit = -unused_credit(price, paid, "USD", period, at, "Pro").amount
        assert 0 <= credit <= paid
        assert credit <= price

    @settings(max_examples=200, deadline=None)
    @given(price=prices, anchor=anchors, interval=st.sampled_from(["month", "year"]), count=st.integers(1, 3))
    def test_cancel_at_period_start_credits_everything_paid(
        self, price: int, anchor: datetime, interval: str, count: int
    ) -> None:
        period = period_at(anchor, interval, count, 0)
        assert -unused_credit(price, price, "USD", period, period.start, "Pro").amount == price

    @settings(max_examples=200, deadline=None)
    @given(price=prices, case=periods_and_instants())
    def test_credit_on_the_last_day_is_one_day_of_price(self, price: int, case: tuple[Period, datetime]) -> None:
        period, _ = case
        days = days_in_period(period)
        last_day = period.end - timedelta(hours=12)
        line = unused_credit(price, price, "USD", period, last_day, "Pro")
        assert line.unused_days == 1
        assert -line.amount == (2 * price + days) // (2 * days)

    @settings(max_examples=200, deadline=None)
    @given(price=prices, case=periods_and_instants())
    def test_used_charge_and_unused_credit_of_a_split_period_add_up_to_the_price(
        self, price: int, case: tuple[Period, datetime]
    ) -> None:
        period, at = case
        days = days_in_period(period)
        used_charge = prorate(price, used_days(period, at), days)
        credit = -unused_credit(price, price, "USD", period, at, "Pro").amount
        assert 0 <= used_charge <= price
        assert 0 <= credit <= price
        assert abs(used_charge + credit - price) <= 1

    @settings(max_examples=200, deadline=None)
    @given(old=prices, new=prices, case=periods_and_instants())
    def test_plan_change_credit_and_charge_cover_the_same_days(
        self, old: int, new: int, case: tuple[Period, datetime]
    ) -> None:
        period, at = case
        credit, charge = plan_change_lines(old, old, new, "USD", period, at, "Old", "New")
        assert credit.amount <= 0 <= charge.amount
        assert credit.unused_days == charge.unused_days
        assert credit.days_in_period == charge.days_in_period == days_in_period(period)
        assert -credit.amount == prorate(old, credit.unused_days, credit.days_in_period)
        assert charge.amount == prorate(new, charge.unused_days, charge.days_in_period)
