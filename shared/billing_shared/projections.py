"""Local projections of another service's facts (e.g. customers): the newest fact wins, whatever the order."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import Insert, insert


def newest_wins_upsert(table: Table, *, key: str, version: str, columns: Sequence[str]) -> Insert:
    """INSERT .. ON CONFLICT (key) DO UPDATE the columns only if the incoming `version` is not older.

    Built once and executed with parameters; an event arriving late never overwrites a newer one.
    """
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c[key]],
        set_={name: stmt.excluded[name] for name in (*columns, version)},
        where=table.c[version] <= stmt.excluded[version],
    )
