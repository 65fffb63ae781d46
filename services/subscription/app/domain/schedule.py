"""Where a subscription's periods fall: re-anchorable schedules over the calendar math of periods.py.

A subscription keeps a global period counter. Its schedule is an anchor instant and the global index of
the period that starts there: period k = period_at(anchor, k - anchor_index). Subscribing anchors on the
start (or, with a trial, on the trial end, the trial being period 0); resuming after a pause re-anchors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.periods import Period, add_interval, period_at, require_aware


@dataclass(frozen=True, slots=True)
class Schedule:
    anchor: datetime
    anchor_index: int
    interval: str
    interval_count: int

    def period(self, index: int) -> Period:
        if index < self.anchor_index:
            raise ValueError(f"period {index} comes before this schedule's anchor period {self.anchor_index}")
        base = period_at(self.anchor, self.interval, self.interval_count, index - self.anchor_index)
        return Period(base.start, base.end, index)

    def end_of(self, index: int) -> datetime:
        """Where period `index` ends (it starts where period index - 1 ended): the billing run's fast path."""
        if index < self.anchor_index:
            raise ValueError(f"period {index} comes before this schedule's anchor period {self.anchor_index}")
        return add_interval(self.anchor, self.interval, self.interval_count, index + 1 - self.anchor_index)


@dataclass(frozen=True, slots=True)
class Start:
    """The first period of a new subscription and the schedule that continues it."""

    first: Period
    schedule: Schedule
    trial_end: datetime | None


def start_schedule(start: datetime, interval: str, interval_count: int, trial_days: int) -> Start:
    """A trial is period 0, [start, start + trial_days); paid periods then anchor on the trial end."""
    start = require_aware(start, "start")
    if trial_days < 0:
        raise ValueError("trial_days must be >= 0")
    if trial_days:
        trial_end = start + timedelta(days=trial_days)
        return Start(Period(start, trial_end, 0), Schedule(trial_end, 1, interval, interval_count), trial_end)
    schedule = Schedule(start, 0, interval, interval_count)
    return Start(schedule.period(0), schedule, None)


def resumed_schedule(at: datetime, next_index: int, interval: str, interval_count: int) -> Schedule:
    """After a pause that outlived its period: a fresh schedule anchored on the resume instant."""
    return Schedule(require_aware(at, "resume instant"), next_index, interval, interval_count)
