"""The one place that answers "what time is it" (per customer, so test clocks can be added here)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

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


def wall_now() -> datetime:
    """Real wall-clock time, for infrastructure (locks, key expiry), never for business dates."""
    return datetime.now(UTC)
