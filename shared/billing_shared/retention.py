"""Retention of the plumbing tables: what the outbox, the inbox and the idempotency keys no longer need.

Every service's outbox, inbox and idempotency-key tables grow with each event and each keyed POST; nothing
else ever deletes from them. This deletes, in short batches (each its own transaction, rows another replica
holds skipped):
- outbox rows published more than `Keep.outbox` ago. An unpublished row is never touched, nor one the relay marked
  unroutable (relay.UNROUTABLE_ERROR: no queue took it) until `python -m billing_shared.outbox resend` replaces
  the mark and the relay publishes it again;
- inbox rows handled more than `Keep.inbox` ago. The inbox only has to outlive every redelivery of an event
  (a relay re-publishing after lost confirms, a broker redelivering unacked messages, the retry queues' few
  seconds), so the default month is ample. A dead-lettered event was mostly never handled; one whose ack was
  lost on every delivery was, so the DLQ replay (billing_shared.dlq) keeps back letters older than this keep;
- idempotency keys older than `Keep.idempotency`, by default twice the 24 hours a key is promised for
  (idempotency.KEEP_FOR).

Event ids are UUIDv7, so "made before the cutoff" is a range on the outbox's and inbox's id indexes, and the
purge adds no index to the hot insert paths. Runs where RUN_SCHEDULER is set (see web.ServiceRuntime).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import Counter

from . import clock
from .db import Database, driver_connection, sql_name
from .idempotency import KEEP_FOR
from .ids import id_floor
from .plumbing_tables import idempotency_table, inbox_table, outbox_table
from .relay import UNROUTABLE_ERROR

log = logging.getLogger(__name__)

PURGED = Counter("plumbing_rows_purged_total", "Outbox, inbox and idempotency-key rows past their keep", ["service", "table"])


@dataclass(frozen=True)
class Keep:
    outbox: timedelta = timedelta(days=7)
    inbox: timedelta = timedelta(days=30)
    idempotency: timedelta = 2 * KEEP_FOR


class PlumbingRetention:
    def __init__(self, db: Database, keep: Keep = Keep(), *, batch_size: int = 5000, pause_s: float = 0.05):
        self.db = db
        self.keep = keep
        self.batch_size = batch_size
        # Between batches: a first purge after months without one deletes millions of rows, and the service's
        # own transactions should get their turn meanwhile.
        self.pause_s = pause_s
        outbox = sql_name(outbox_table(db.schema))
        inbox = sql_name(inbox_table(db.schema))
        keys = sql_name(idempotency_table(db.schema))
        # An event id is made when its event is, so "id below the cutoff's id floor" narrows to an index range
        # before the timestamp itself is checked.
        self._outbox = (
            f"DELETE FROM {outbox} WHERE id = ANY(ARRAY("
            f"SELECT id FROM {outbox} WHERE event_id < $1 AND published_at < $2 AND last_error IS DISTINCT FROM $3 "
            "ORDER BY event_id LIMIT $4 FOR UPDATE SKIP LOCKED))"
        )
        self._inbox = (
            f"DELETE FROM {inbox} WHERE event_id = ANY(ARRAY("
            f"SELECT event_id FROM {inbox} WHERE event_id < $1 AND handled_at < $2 "
            "ORDER BY event_id LIMIT $3 FOR UPDATE SKIP LOCKED))"
        )
        self._keys = (
            f"DELETE FROM {keys} k USING (SELECT scope, key FROM {keys} WHERE created_at < $1 "
            "ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) old WHERE (k.scope, k.key) = (old.scope, old.key)"
        )

    async def purge(self) -> dict[str, int]:
        """Delete everything past its keep, batch by batch; the rows deleted per table."""
        now = clock.wall_now()
        outbox_cutoff, inbox_cutoff = now - self.keep.outbox, now - self.keep.inbox
        purged = {
            "outbox": await self._purge(self._outbox, id_floor(outbox_cutoff), outbox_cutoff, UNROUTABLE_ERROR),
            "inbox": await self._purge(self._inbox, id_floor(inbox_cutoff), inbox_cutoff),
            "idempotency_keys": await self._purge(self._keys, now - self.keep.idempotency),
        }
        for table, count in purged.items():
            PURGED.labels(self.db.schema, table).inc(count)
        return purged

    async def _purge(self, statement: str, *args: object) -> int:
        total = 0
        while True:
            async with self.db.sessions() as session:
                driver = await driver_connection(session)
                status = await driver.execute(statement, *args, self.batch_size)
                await session.commit()
            deleted = int(status.rsplit(" ", 1)[-1])  # "DELETE <n>"
            total += deleted
            if deleted < self.batch_size:
                return total
            await asyncio.sleep(self.pause_s)

    async def run(self, interval_s: float) -> None:
        """Purge now and then every `interval_s`, for as long as the service runs."""
        while True:
            try:
                purged = await self.purge()
                if any(purged.values()):
                    log.info("purged plumbing rows past their keep", extra={"purged": purged})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("plumbing retention failed; trying again next interval")
            await asyncio.sleep(interval_s)
