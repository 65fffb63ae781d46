"""The dunning case state machine and the step taken after each failure (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.cases import (
    AwaitPaymentMethod,
    CaseStatus,
    Exhausted,
    IllegalTransition,
    Retry,
    end_of_day,
    is_new_failure,
    next_step,
    recovery_rate,
    total_attempts,
    transition,
)

T0 = datetime(2030, 1, 31, 9, 30, tzinfo=UTC)
DEFAULT = (timedelta(days=2), timedelta(days=3))


class TestNextStep:
    def test_the_first_failure_retries_after_the_first_offset(self) -> None:
        assert next_step(1, DEFAULT, T0) == Retry(at=T0 + timedelta(days=2), final=False)

    def test_the_second_failure_schedules_the_last_retry_which_is_final(self) -> None:
        assert next_step(2, DEFAULT, T0) == Retry(at=T0 + timedelta(days=3), final=True)

    def test_the_third_failure_exhausts_the_default_schedule(self) -> None:
        assert next_step(3, DEFAULT, T0) == Exhausted(failures=3)
        assert total_attempts(DEFAULT) == 3

    def test_a_hard_decline_waits_as_long_as_the_rest_of_the_schedule_to_the_end_of_that_day(self) -> None:
        # T0 is 2030-01-31 09:30 UTC: "add a new card by February 5" gives all of February 5.
        last_moment = timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999)
        feb_5, feb_3 = datetime(2030, 2, 5, tzinfo=UTC), datetime(2030, 2, 3, tzinfo=UTC)
        assert next_step(1, DEFAULT, T0, "hard") == AwaitPaymentMethod(until=feb_5 + last_moment)
        assert next_step(2, DEFAULT, T0, "hard") == AwaitPaymentMethod(until=feb_3 + last_moment)

    def test_the_end_of_a_day_is_its_last_microsecond_in_utc(self) -> None:
        assert end_of_day(datetime(2030, 2, 5, tzinfo=UTC)).isoformat() == "2030-02-05T23:59:59.999999+00:00"
        tokyo_morning = datetime.fromisoformat("2030-02-06T08:00:00+09:00")  # 2030-02-05 23:00 UTC
        assert end_of_day(tokyo_morning).isoformat() == "2030-02-05T23:59:59.999999+00:00"

    def test_a_hard_decline_on_the_last_attempt_exhausts(self) -> None:
        assert next_step(3, DEFAULT, T0, "hard") == Exhausted(failures=3)

    def test_fractional_days_give_exact_offsets(self) -> None:
        assert next_step(1, (timedelta(days=0.5),), T0) == Retry(at=T0 + timedelta(hours=12), final=True)

    def test_failures_start_at_one(self) -> None:
        with pytest.raises(ValueError):
            next_step(0, DEFAULT, T0)

    @settings(max_examples=60, deadline=None)
    @given(offsets=st.lists(st.integers(1, 30), min_size=1, max_size=8))
    def test_a_chain_of_soft_failures_retries_at_each_offset_then_exhausts_once(self, offsets: list[int]) -> None:
        schedule = tuple(timedelta(days=d) for d in offsets)
        failed_at, steps = T0, []
        for failures in range(1, total_attempts(schedule) + 1):
            step = next_step(failures, schedule, failed_at)
            steps.append(step)
            if isinstance(step, Retry):
                assert step.at - failed_at == schedule[failures - 1]
                failed_at = step.at
        assert isinstance(steps[-1], Exhausted) and steps[-1].failures == len(offsets) + 1
        assert [s.final for s in steps[:-1] if isinstance(s, Retry)] == [False] * (len(offsets) - 1) + [True]
        assert failed_at == T0 + sum(schedule, timedelta())


class TestTransitions:
    @pytest.mark.parametrize("target", [CaseStatus.RECOVERED, CaseStatus.EXHAUSTED, CaseStatus.CANCELED])
    def test_an_open_case_can_end_in_any_way(self, target: CaseStatus) -> None:
        assert transition("open", target) is target

    @pytest.mark.parametrize("closed", [CaseStatus.RECOVERED, CaseStatus.EXHAUSTED, CaseStatus.CANCELED])
    @pytest.mark.parametrize("target", list(CaseStatus))
    def test_a_closed_case_never_changes(self, closed: CaseStatus, target: CaseStatus) -> None:
        with pytest.raises(IllegalTransition):
            transition(closed, target)


def test_only_failures_of_attempts_not_yet_recorded_are_new() -> None:
    assert is_new_failure(2, 1)
    assert not is_new_failure(1, 1)
    assert not is_new_failure(1, 2)


def test_recovery_rate_is_recovered_over_ended_and_null_before_any_case_ended() -> None:
    assert recovery_rate(0, 0) is None
    assert recovery_rate(3, 1) == 0.75
    assert recovery_rate(0, 2) == 0.0
