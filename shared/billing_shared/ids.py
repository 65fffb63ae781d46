"""Time-ordered UUIDs (version 7), so ids double as stable pagination cursors."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def new_id() -> uuid.UUID:
    """A UUIDv7: 48-bit millisecond timestamp, 4-bit version, 12+62 random bits, RFC 9562 variant."""
    return _uuid7(time.time_ns() // 1_000_000)


def id_made_at(at: datetime) -> uuid.UUID:
    """A UUIDv7 as `new_id` would have made it at `at` (timezone-aware): for data and tests set in the past."""
    return _uuid7(_millis(at))


def id_time(value: uuid.UUID) -> datetime | None:
    """When a UUIDv7 was made (to the millisecond); None for an id of another version, which carries no time."""
    if value.version != 7 or value.variant != uuid.RFC_4122:
        return None
    return _EPOCH + timedelta(milliseconds=value.int >> 80)


def _uuid7(ms: int) -> uuid.UUID:
    rand = int.from_bytes(os.urandom(10), "big")
    value = _timestamp_bits(ms)
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def id_floor(at: datetime) -> uuid.UUID:
    """The least UUIDv7 of the millisecond `at` (timezone-aware): every id made at or after `at` sorts above it,
    so "made before `at`" is a range on an id index."""
    return uuid.UUID(int=_timestamp_bits(_millis(at)))


def _timestamp_bits(ms: int) -> int:
    return (ms & ((1 << 48) - 1)) << 80


def _millis(at: datetime) -> int:
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
