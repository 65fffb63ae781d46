"""The one place that answers "what time is it" (per customer, so test clocks can be added here)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime

from .errors import ApiError

_source: Callable[[Any], datetime] | None = None


def now(customer_id: Any = None) -> datetime:
    """The current UTC time for a customer (all customers share the wall clock for now)."""
    if _source is not None:
        return _source(customer_id)
    return datetime.now(UTC)


def set_source(source: Callable[[Any], datetime] | None) -> None:
    """Replace the time source (tests, simulated clocks); None restores the wall clock."""
    global _source
    _source = source


def ensure_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# The instants a request may name: nothing billed predates the Unix epoch, and date arithmetic near Python's
# year 9999 would overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _utc_instant(value: datetime) -> datetime:
    try:
        instant = ensure_utc(value)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00, which is in the year 10000 in UTC
        instant = None
    if instant is None or not EARLIEST <= instant < LATEST:
        raise ValueError(f"must be between {EARLIEST.isoformat()} and {LATEST.isoformat()}")
    return instant


# An instant in a request body: its zone is required (a naive time's zone would be a guess), it is converted
# to UTC, and one out of range is a 422 like any other bad value (not an OverflowError and a 500 later).
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc_instant)]


def wall_now() -> datetime:
    """Real wall-clock time, for infrastructure (locks, key expiry), never for business dates."""
    return datetime.now(UTC)


class AsOfTooFarAhead(ApiError):
    """An explicit as_of (a run "as of" some instant: billing, dunning, reconciliation) further ahead than its
    service allows: most likely a typo (2062 for 2026), which would do at once what years would bring. The API
    answers it as a 422 on `as_of`; a CLI prints its message."""

    def __init__(self, message: str) -> None:
        super().__init__(422, "validation_error", message, field="as_of")


def check_as_of(as_of: datetime, now: datetime, max_ahead_days: int) -> None:
    horizon = now + timedelta(days=max_ahead_days)
    if as_of > horizon:
        raise AsOfTooFarAhead(f"as_of may be at most {max_ahead_days} days ahead ({horizon.isoformat()})")
