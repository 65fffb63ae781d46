"""Schedules: trials are period 0, paid periods anchor on the trial end, resumes re-anchor."""

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.schedule import Schedule, resumed_schedule, start_schedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_without_trial_period_zero_starts_at_the_start() -> None:
    start = start_schedule(utc(2024, 1, 31, 8), "month", 1, 0)
    assert (start.first.start, start.first.end, start.trial_end) == (utc(2024, 1, 31, 8), utc(2024, 2, 29, 8), None)
    assert start.schedule.period(2).start == utc(2024, 3, 31, 8)


def test_a_trial_is_period_zero_and_billing_anchors_on_its_end() -> None:
    start = start_schedule(utc(2024, 1, 17), "month", 1, 14)
    assert (start.first.start, start.first.end) == (utc(2024, 1, 17), utc(2024, 1, 31))
    assert [start.schedule.period(i).end for i in (1, 2, 3)] == [utc(2024, 2, 29), utc(2024, 3, 31), utc(2024, 4, 30)]


def test_resuming_re_anchors_and_keeps_counting_periods() -> None:
    schedule = resumed_schedule(utc(2024, 5, 31, 12), 7, "month", 1)
    assert schedule.period(7).start == utc(2024, 5, 31, 12) and schedule.period(8).start == utc(2024, 6, 30, 12)
    with pytest.raises(ValueError):
        schedule.period(6)


@settings(max_examples=100)
@given(
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
    trial_days=st.integers(min_value=0, max_value=60),
    interval=st.sampled_from(["month", "year"]),
    count=st.integers(min_value=1, max_value=3),
)
def test_periods_chain_without_gaps_from_the_first(start, trial_days, interval, count) -> None:
    begun = start_schedule(start, interval, count, trial_days)
    previous = begun.first
    for index in range(1, 25):
        period = begun.schedule.period(index)
        assert period.start == previous.end and period.index == index
        previous = period


def test_a_schedule_is_a_value() -> None:
    assert Schedule(utc(2024, 1, 1), 0, "month", 1) == Schedule(utc(2024, 1, 1), 0, "month", 1)
