"""Gapless number series: a counter row per prefix, incremented under its row lock in the caller's transaction.

The lock is held until the transaction ends, so concurrent finalizations take numbers one after the
other, and a rollback takes its increment back with it: no gap, no duplicate. Call it as late as
possible in the transaction, since everyone numbering in that series waits for the commit.
"""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.invoices import format_number
from .models import Counter


async def next_number(session: AsyncSession, prefix: str) -> str:
    """The next number of the series `prefix` ("INV-" -> "INV-000001", "INV-000002", ...)."""
    stmt = (
        insert(Counter)
        .values(series=prefix, value=1)
        .on_conflict_do_update(index_elements=[Counter.series], set_={"value": Counter.value + 1})
        .returning(Counter.value)
    )
    seq = (await session.execute(stmt)).scalar_one()
    return format_number(prefix.rstrip("-"), seq)
