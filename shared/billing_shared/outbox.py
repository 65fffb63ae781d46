"""Events published while no queue was bound for them: list them, and send them again once their consumer is up.

The relay records such an event as sent with `last_error` relay.UNROUTABLE_ERROR (it must not block the outbox)
and logs a warning; the retention purge never deletes a row so marked, however old. That happens when a producer
of a new event type was upgraded before its consumer (README: start consumers first). Resending marks the rows
unpublished again, noted RESENT_NOTE: the relay publishes them once more (marking them unroutable again if still
no queue takes them), consumers drop whatever they had already handled (their inbox), and once published a row
is purged like any sent row, OUTBOX_KEEP_DAYS later.

    python -m billing_shared.outbox unroutable --service invoice [--database-url URL]
    python -m billing_shared.outbox resend     --service invoice [--type invoice.overpaid ...] [--event-id ID ...]

`--type` is an event type (payment.succeeded), whatever routing words its routing key adds.

The database URL defaults to DATABASE_URL, else to the service's own role on the local `make run` database.
Exit status 2: nothing done (Postgres out of reach or refusing us, no outbox of that service there, a usage error).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .bootstrap import service_url
from .db import sql_name
from .dlq import without_secrets
from .plumbing_tables import notify_channel, outbox_table
from .relay import UNROUTABLE_ERROR, asyncpg_dsn

RESENT_NOTE = "resent after being unroutable"
LOCAL_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class UnroutableEvents:
    type: str
    count: int
    first_at: datetime
    last_at: datetime


class Unavailable(Exception):
    """Postgres out of reach or refusing us, or no outbox of that service there: said in one line, the URL
    without its password."""


@asynccontextmanager
async def _connected(database_url: str, schema: str) -> AsyncIterator[asyncpg.Connection]:
    shown = without_secrets(database_url)
    try:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
    # Whatever fails here fails the connect: no such host, database or role, a wrong password, a malformed URL.
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise Unavailable(f"cannot connect to Postgres at {shown}: {exc}") from exc
    try:
        yield conn
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError) as exc:
        raise Unavailable(f"no outbox of service {schema} at {shown} (is --service right?): {exc}") from exc
    except asyncpg.InsufficientPrivilegeError as exc:  # another service's role
        raise Unavailable(f"cannot read the outbox of service {schema} at {shown}: {exc}") from exc
    finally:
        await conn.close()


async def list_unroutable(database_url: str, schema: str) -> list[UnroutableEvents]:
    """What the service's outbox holds that no queue took, per event type."""
    outbox = sql_name(outbox_table(schema))
    async with _connected(database_url, schema) as conn:
        rows = await conn.fetch(
            f"SELECT body->>'type' AS type, count(*) AS n, min(created_at) AS first_at, max(created_at) AS last_at "
            f"FROM {outbox} WHERE published_at IS NOT NULL AND last_error = $1 GROUP BY 1 ORDER BY 1",
            UNROUTABLE_ERROR,
        )
    return [UnroutableEvents(r["type"], r["n"], r["first_at"], r["last_at"]) for r in rows]


async def resend_unroutable(
    database_url: str,
    schema: str,
    types: Sequence[str] | None = None,
    event_ids: Sequence[uuid.UUID] | None = None,
) -> int:
    """Hand unroutable events (all, or those of these types / ids) back to the relay; how many."""
    outbox = sql_name(outbox_table(schema))
    async with _connected(database_url, schema) as conn:
        async with conn.transaction():
            status = await conn.execute(
                f"UPDATE {outbox} SET published_at = NULL, last_error = $2 WHERE published_at IS NOT NULL "
                "AND last_error = $1 AND ($3::text[] IS NULL OR body->>'type' = ANY($3)) "
                "AND ($4::uuid[] IS NULL OR event_id = ANY($4))",
                UNROUTABLE_ERROR, RESENT_NOTE, list(types) if types else None,
                list(event_ids) if event_ids else None,
            )
            await conn.execute("SELECT pg_notify($1, '')", notify_channel(schema))  # wake the relay now
    return int(status.rsplit(" ", 1)[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m billing_shared.outbox", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=["unroutable", "resend"])
    parser.add_argument("--service", required=True, help="the service whose outbox to read (its schema)")
    parser.add_argument("--database-url", help="default: DATABASE_URL, else the local make-run database")
    parser.add_argument("--type", action="append", dest="types", help="only events of this type (repeatable)")
    parser.add_argument("--event-id", action="append", dest="event_ids", type=uuid.UUID, help="only this event")
    args = parser.parse_args(argv)
    url = args.database_url or os.environ.get("DATABASE_URL") or service_url(LOCAL_ADMIN_DSN, "billing", args.service)
    try:
        return _run(args, url)
    except Unavailable as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2  # as for a usage error: nothing was done


def _run(args: argparse.Namespace, url: str) -> int:
    if args.command == "unroutable":
        groups = asyncio.run(list_unroutable(url, args.service))
        for group in groups:
            print(f"{group.type}\t{group.count}\t{group.first_at.isoformat()} .. {group.last_at.isoformat()}")
        print(f"{sum(g.count for g in groups)} unroutable event(s) in {args.service}'s outbox")
    else:
        count = asyncio.run(resend_unroutable(url, args.service, args.types, args.event_ids))
        print(f"{count} event(s) handed back to {args.service}'s relay")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
