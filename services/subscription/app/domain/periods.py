"""Calendar-correct billing periods anchored on a subscription's start instant.

Boundary n is always computed from the anchor (never by chaining periods), with the day clamped to the
month's last day: a Jan 31 monthly anchor gives Feb 28/29, Mar 31, Apr 30; a Feb 29 yearly anchor gives
Feb 28, then Feb 29 again in the next leap year. Every instant is UTC and keeps the anchor's time of day.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class BillingInterval(StrEnum):
    MONTH = "month"
    YEAR = "year"


_MONTHS_PER_UNIT = {BillingInterval.MONTH: 1, BillingInterval.YEAR: 12}


@dataclass(frozen=True, slots=True)
class Period:
    """The half-open interval [start, end) of one billing period; index 0 starts at the anchor."""

    start: datetime
    end: datetime
    index: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", require_aware(self.start, "period start"))
        object.__setattr__(self, "end", require_aware(self.end, "period end"))
        if not self.start < self.end:
            raise ValueError(f"period start {self.start.isoformat()} must be before its end {self.end.isoformat()}")
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise ValueError(f"period index must be an int >= 0, got {self.index!r}")

    def __contains__(self, instant: datetime) -> bool:
        return self.start <= require_aware(instant, "instant") < self.end


def require_aware(value: datetime, what: str = "datetime") -> datetime:
    """The same instant in UTC; naive datetimes are refused because their meaning is a guess."""
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


def parse_interval(interval: str | BillingInterval) -> BillingInterval:
    try:
        return BillingInterval(interval)
    except ValueError:
        allowed = ", ".join(repr(i.value) for i in BillingInterval)
        raise ValueError(f"unknown billing interval {interval!r}: expected one of {allowed}") from None


def _months_per_period(interval: str | BillingInterval, count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"interval_count must be an int >= 1, got {count!r}")
    return _MONTHS_PER_UNIT[parse_interval(interval)] * count


def _require_index(n: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{what} must be an int >= 0, got {n!r}")
    return n


def _add_months(anchor: datetime, months: int) -> datetime:
    month_zero_based = anchor.month - 1 + months
    year, month = anchor.year + month_zero_based // 12, month_zero_based % 12 + 1
    if year > datetime.max.year:
        raise ValueError(f"billing period boundary falls after year {datetime.max.year}")
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def add_interval(anchor: datetime, interval: str | BillingInterval, count: int, n: int) -> datetime:
    """Boundary n: the anchor plus n periods of `count` months/years, day clamped to the month's end."""
    step = _months_per_period(interval, count)
    return _add_months(require_aware(anchor, "anchor"), step * _require_index(n, "boundary number"))


def period_at(anchor: datetime, interval: str | BillingInterval, count: int, index: int) -> Period:
    """The index-th period (0 = the one starting at the anchor)."""
    _require_index(index, "period index")
    return Period(
        start=add_interval(anchor, interval, count, index),
        end=add_interval(anchor, interval, count, index + 1),
        index=index,
    )


def period_containing(anchor: datetime, interval: str | BillingInterval, count: int, instant: datetime) -> Period:
    """The period with start <= instant < end; ValueError for instants before the anchor."""
    step = _months_per_period(interval, count)
    anchor_utc, instant_utc = require_aware(anchor, "anchor"), require_aware(instant, "instant")
    if instant_utc < anchor_utc:
        raise ValueError(f"instant {instant_utc.isoformat()} is before the anchor {anchor_utc.isoformat()}")
    months_apart = (instant_utc.year - anchor_utc.year) * 12 + (instant_utc.month - anchor_utc.month)
    # The month arithmetic lands on the right period or one after it (day/time within the month decide).
    index = max(months_apart // step, 0)
    while index > 0 and _add_months(anchor_utc, step * index) > instant_utc:
        index -= 1
    while _add_months(anchor_utc, step * (index + 1)) <= instant_utc:
        index += 1
    return period_at(anchor_utc, interval, count, index)
