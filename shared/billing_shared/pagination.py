"""Cursor pagination over time-ordered UUID ids: stable under inserts, never an OFFSET scan."""

from __future__ import annotations

import uuid
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from .errors import ApiError

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class Page(BaseModel, Generic[T]):
    data: list[T]
    has_more: bool
    next_cursor: str | None = None


def parse_cursor(cursor: str | None) -> uuid.UUID | None:
    if cursor is None or cursor == "":
        return None
    try:
        return uuid.UUID(cursor)
    except ValueError:
        raise ApiError(422, "validation_error", "cursor is not a valid cursor", field="cursor") from None


async def fetch_page(
    session: AsyncSession, stmt: Select, id_column: Any, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """Rows after `cursor` in id order, plus the cursor of the next page (None on the last)."""
    after = parse_cursor(cursor)
    if after is not None:
        stmt = stmt.where(id_column > after)
    rows = list((await session.execute(stmt.order_by(id_column).limit(limit + 1))).scalars())
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, str(getattr(rows[-1], id_column.key))
    return rows, None
