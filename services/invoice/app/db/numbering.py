"""Gapless number series: a counter row per prefix, incremented under its row lock in the caller's transaction.

The lock is held until the transaction ends, so concurrent finalizations take numbers one after the
other, and a rollback takes its increment back with it: no gap, no duplicate. Call it as late as
possible in the transaction, since everyone numbering in that series waits for the commit.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing_shared.db import driver_connection, sql_name

from ..domain.invoices import format_number
from .models import Counter

# Built once and run on the driver connection: every finalization runs it, last before its commit.
_NEXT_VALUE = (
    f"INSERT INTO {sql_name(Counter.__table__)} AS c (series, value) VALUES ($1, 1) "
    "ON CONFLICT (series) DO UPDATE SET value = c.value + 1 RETURNING c.value"
)


def series_of(prefix: str) -> str:
    """The counter a prefix numbers on: "INV" and "INV-" print the same numbers, so they share one series."""
    return prefix.strip().rstrip("-") + "-"


async def next_number(session: AsyncSession, prefix: str) -> str:
    """The next number of the series `prefix` ("INV-" -> "INV-000001", "INV-000002", ...)."""
    seq = await (await driver_connection(session)).fetchval(_NEXT_VALUE, series_of(prefix))
    return format_number(prefix.strip().rstrip("-"), seq)
