"""Billing periods: calendar-correct, anchored on the start instant, tiling time without gaps or overlaps."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.periods import Period, add_interval, period_at, period_containing


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class TestMonthlyBoundaries:
    def test_jan_31_anchor_clamps_to_month_end_without_drifting(self) -> None:
        anchor = utc(2023, 1, 31, 9, 30)
        boundaries = [add_interval(anchor, "month", 1, n) for n in range(5)]
        assert boundaries == [
            utc(2023, 1, 31, 9, 30),
            utc(2023, 2, 28, 9, 30),
            utc(2023, 3, 31, 9, 30),
            utc(2023, 4, 30, 9, 30),
            utc(2023, 5, 31, 9, 30),
        ]

    def test_jan_31_anchor_reaches_feb_29_in_a_leap_year(self) -> None:
        assert add_interval(utc(2024, 1, 31), "month", 1, 1) == utc(2024, 2, 29)

    def test_interval_count_multiplies_the_step(self) -> None:
        assert add_interval(utc(2023, 8, 31), "month", 3, 2) == utc(2024, 2, 29)

    def test_boundary_zero_is_the_anchor(self) -> None:
        anchor = utc(2023, 5, 17, 23, 59, 59, 999_999)
        assert add_interval(anchor, "month", 1, 0) == anchor

    def test_crossing_the_year_end(self) -> None:
        assert add_interval(utc(2023, 11, 30), "month", 1, 3) == utc(2024, 2, 29)


class TestYearlyBoundaries:
    def test_feb_29_anchor_clamps_then_returns_in_the_next_leap_year(self) -> None:
        anchor = utc(2024, 2, 29, 12)
        assert [add_interval(anchor, "year", 1, n) for n in range(1, 5)] == [
            utc(2025, 2, 28, 12),
            utc(2026, 2, 28, 12),
            utc(2027, 2, 28, 12),
            utc(2028, 2, 29, 12),
        ]

    def test_2100_is_not_a_leap_year(self) -> None:
        assert add_interval(utc(2096, 2, 29), "year", 1, 4) == utc(2100, 2, 28)


class TestPeriodLookup:
    def test_period_at_index_is_half_open_between_boundaries(self) -> None:
        period = period_at(utc(2023, 1, 31), "month", 1, 1)
        assert period == Period(utc(2023, 2, 28), utc(2023, 3, 31), 1)
        assert utc(2023, 2, 28) in period
        assert utc(2023, 3, 31) not in period

    def test_instant_on_a_boundary_belongs_to_the_period_it_starts(self) -> None:
        period = period_containing(utc(2023, 1, 31), "month", 1, utc(2023, 3, 31))
        assert (period.index, period.start) == (2, utc(2023, 3, 31))

    def test_instant_just_before_a_boundary_belongs_to_the_earlier_period(self) -> None:
        instant = utc(2023, 3, 31) - timedelta(microseconds=1)
        assert period_containing(utc(2023, 1, 31), "month", 1, instant).index == 1

    def test_time_of_day_decides_on_the_boundary_date(self) -> None:
        anchor = utc(2023, 1, 15, 18)
        assert period_containing(anchor, "month", 1, utc(2023, 2, 15, 17, 59)).index == 0
        assert period_containing(anchor, "month", 1, utc(2023, 2, 15, 18)).index == 1

    def test_non_utc_inputs_are_converted_to_utc(self) -> None:
        anchor = datetime(2023, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))  # 2022-12-31 23:00 UTC
        period = period_at(anchor, "month", 1, 0)
        assert period.start == utc(2022, 12, 31, 23)
        assert period.end == utc(2023, 1, 31, 23)
        assert period.start.tzinfo is UTC


class TestValidation:
    @pytest.mark.parametrize("interval", ["week", "Month", "", None])
    def test_unknown_interval_is_refused(self, interval: object) -> None:
        with pytest.raises(ValueError, match="interval"):
            add_interval(utc(2023, 1, 1), interval, 1, 1)  # type: ignore[arg-type]

    @pytest.mark.parametrize("count", [0, -1, True, 1.0])
    def test_interval_count_must_be_a_positive_int(self, count: object) -> None:
        with pytest.raises(ValueError, match="interval_count"):
            add_interval(utc(2023, 1, 1), "month", count, 1)  # type: ignore[arg-type]

    def test_naive_anchor_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            period_at(datetime(2023, 1, 1), "month", 1, 0)

    def test_naive_instant_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            period_containing(utc(2023, 1, 1), "month", 1, datetime(2023, 2, 1))

    def test_instant_before_the_anchor_has_no_period(self) -> None:
        with pytest.raises(ValueError, match="before the anchor"):
            period_containing(utc(2023, 1, 1), "month", 1, utc(2022, 12, 31))

    def test_negative_index_is_refused(self) -> None:
        with pytest.raises(ValueError, match="index"):
            period_at(utc(2023, 1, 1), "month", 1, -1)

    def test_period_must_end_after_it_starts(self) -> None:
        with pytest.raises(ValueError, match="before its end"):
            Period(utc(2023, 2, 1), utc(2023, 2, 1))


anchors = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 12, 31, 23, 59, 59), timezones=st.just(UTC)
)
intervals = st.sampled_from(["month", "year"])
counts = st.integers(min_value=1, max_value=3)


def periods_in_ten_years(interval: str, count: int) -> int:
    return 120 // count if interval == "month" else 10 // count + 1


class TestProperties:
    @settings(max_examples=200, deadline=None)
    @given(anchor=anchors, interval=intervals, count=counts)
    def test_consecutive_periods_tile_ten_years_without_gap_or_overlap(
        self, anchor: datetime, interval: str, count: int
    ) -> None:
        periods = [period_at(anchor, interval, count, i) for i in range(periods_in_ten_years(interval, count) + 1)]
        assert periods[0].start == anchor
        assert periods[-1].end >= anchor.replace(year=anchor.year + 10, day=min(anchor.day, 28))
        for earlier, later in zip(periods, periods[1:]):
            assert earlier.start < earlier.end
            assert earlier.end == later.start
        for period in periods:
            assert (period.start.hour, period.start.minute, period.start.second) == (
                anchor.hour,
                anchor.minute,
                anchor.second,
            )
            assert period.start.day == anchor.day or period.start.month != (period.start + timedelta(days=1)).month

    @settings(max_examples=200, deadline=None)
    @given(
        anchor=anchors,
        interval=intervals,
        count=counts,
        offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3653)),
    )
    def test_period_containing_contains_the_instant(
        self, anchor: datetime, interval: str, count: int, offset: timedelta
    ) -> None:
        instant = anchor + offset
        period = period_containing(anchor, interval, count, instant)
        assert period.start <= instant < period.end
        assert period == period_at(anchor, interval, count, period.index)
