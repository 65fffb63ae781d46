"""The dunning case state machine and the decision taken after each failed attempt.

A case is open while the debt is being chased, then ends recovered (paid), exhausted (the schedule
ran out: suspend and give up) or canceled (the invoice was voided or an admin stopped it). A hard
decline keeps the case open but waits for a new payment method instead of retrying the old one;
if none comes before the schedule would have ended, the case is exhausted then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Literal


class CaseStatus(StrEnum):
    OPEN = "open"
    RECOVERED = "recovered"
    EXHAUSTED = "exhausted"
    CANCELED = "canceled"


TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.OPEN: frozenset({CaseStatus.RECOVERED, CaseStatus.EXHAUSTED, CaseStatus.CANCELED}),
    CaseStatus.RECOVERED: frozenset(),
    CaseStatus.EXHAUSTED: frozenset(),
    CaseStatus.CANCELED: frozenset(),
}


class IllegalTransition(ValueError):
    pass


def transition(current: CaseStatus | str, target: CaseStatus) -> CaseStatus:
    """The target status if the move is allowed; closed cases never reopen."""
    current = CaseStatus(current)
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"a {current} dunning case cannot become {target}")
    return target


DeclineType = Literal["hard", "soft"]


@dataclass(frozen=True)
class Retry:
    """Retry at `at`; `final` marks the last retry the schedule allows (time for the final notice)."""

    at: datetime
    final: bool


@dataclass(frozen=True)
class AwaitPaymentMethod:
    """Hard decline: no retry on the same method; exhaust at `until` unless a new method arrives."""

    until: datetime


@dataclass(frozen=True)
class Exhausted:
    failures: int


Step = Retry | AwaitPaymentMethod | Exhausted


def total_attempts(schedule: Sequence[timedelta]) -> int:
    return len(schedule) + 1


def next_step(
    failures: int, schedule: Sequence[timedelta], failed_at: datetime, decline_type: DeclineType = "soft"
) -> Step:
    """What to do after the `failures`-th failed attempt at `failed_at`.

    Offsets count from the latest failure: retry k (k = failures) is due at failed_at + schedule[k-1].
    """
    if failures < 1:
        raise ValueError("failures counts failed attempts and starts at 1")
    if failures > len(schedule):
        return Exhausted(failures)
    if decline_type == "hard":
        # Wait as long as the remaining schedule would have taken, to the end of that (UTC) day: the customer is
        # asked for a new card "by" that date, and has all of it.
        return AwaitPaymentMethod(until=end_of_day(failed_at + sum(schedule[failures - 1 :], timedelta())))
    return Retry(at=failed_at + schedule[failures - 1], final=failures == len(schedule))


def end_of_day(instant: datetime) -> datetime:
    """The last microsecond of the UTC calendar day `instant` falls in."""
    return datetime.combine(instant.astimezone(UTC).date(), time.max, tzinfo=UTC)


def is_new_failure(reported_attempt: int, failures_so_far: int) -> bool:
    """A failure report changes the case only if it is for an attempt not yet recorded."""
    return reported_attempt > failures_so_far


def recovery_rate(recovered: int, exhausted: int) -> float | None:
    """Share of closed-by-outcome cases that were paid; None before any case has ended."""
    ended = recovered + exhausted
    return None if ended == 0 else recovered / ended
