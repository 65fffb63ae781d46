"""Dunning service settings (env vars; working local defaults).

DUNNING_RETRY_DAYS is the retry schedule: comma-separated offsets in days, each counted from the
failure before it. "2,3" means fail → retry 2 days later → fail → retry 3 days later → fail →
exhausted (3 failures in all). Decimals are accepted ("0.5" = 12 hours) so tests and benchmarks
can use short offsets; every offset must be positive and at most 365 days.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from billing_shared.settings import ServiceSettings

MAX_OFFSET_DAYS = 365
MAX_RETRIES = 20


def parse_retry_days(value: Any) -> tuple[float, ...]:
    """'2,3' (or a sequence of numbers) → (2.0, 3.0); anything else is refused with a clear message."""
    hint = 'DUNNING_RETRY_DAYS must be a comma-separated list of positive day offsets, e.g. "2,3"'
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if value.strip() == "" or any(p == "" for p in parts):
            raise ValueError(f"{hint}; got {value!r} (empty entry)")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise ValueError(f"{hint}; got {value!r}")
    if not parts:
        raise ValueError(f"{hint}; got an empty schedule")
    if len(parts) > MAX_RETRIES:
        raise ValueError(f"{hint}; got {len(parts)} retries, at most {MAX_RETRIES} are allowed")
    days: list[float] = []
    for part in parts:
        if isinstance(part, bool):
            raise ValueError(f"{hint}; got {part!r}")
        try:
            number = float(part)
        except (TypeError, ValueError):
            raise ValueError(f"{hint}; {part!r} is not a number") from None
        if not math.isfinite(number) or number <= 0:
            raise ValueError(f"{hint}; {part!r} is not a positive number of days")
        if number > MAX_OFFSET_DAYS:
            raise ValueError(f"{hint}; {part!r} is more than {MAX_OFFSET_DAYS} days")
        days.append(number)
    return tuple(days)


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "dunning"

    dunning_retry_days: Annotated[tuple[float, ...], NoDecode] = Field(
        (2.0, 3.0), description="retry offsets in days after each failure; attempts in all = retries + 1"
    )
    dunning_scheduler_interval_s: float = Field(30.0, gt=0, description="how often the scheduler looks for due retries")
    dunning_scheduler_batch_size: int = Field(200, ge=1, le=10_000, description="cases claimed per transaction")
    dunning_max_as_of_ahead_days: int = Field(
        3660, ge=0, description="how far past now an explicit dunning-run as_of may reach (guards against typos)"
    )

    @field_validator("dunning_retry_days", mode="before")
    @classmethod
    def _parse_retry_days(cls, value: Any) -> tuple[float, ...]:
        return parse_retry_days(value)

    @property
    def retry_schedule(self) -> tuple[timedelta, ...]:
        return tuple(timedelta(days=d) for d in self.dunning_retry_days)
