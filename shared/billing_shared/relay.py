"""The outbox relay: publishes committed outbox rows with publisher confirms, then marks them sent.

Rows are claimed with FOR UPDATE SKIP LOCKED, so any number of relays (replicas) can run; a row is
marked sent only after the broker confirmed it, so a crash at any point re-publishes rather than loses
(consumers deduplicate by event id). The relay wakes on the outbox's NOTIFY and polls as a fallback.

A claim starts a little below the highest id this relay claimed (CLAIM_WINDOW), not at the start of the index
of unsent rows: marking a row sent leaves its entry there, dead, until the table is vacuumed, and a claim from
the start walks every one of them (0.05 ms per claim grew to 1 ms after 200,000 events with autovacuum off, as
on the machines this project is tested on; autovacuum's default trigger, a fifth of the table dead, lets it grow
with the outbox's retention too). Once per poll interval a claim starts from the beginning, so a row committed
late with a lower id (or marked unsent again by `billing_shared.outbox resend`) is published within that time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

import asyncpg
from aio_pika.abc import AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import PublishError
from prometheus_client import Counter

from . import amqp, clock
from .db import Database, driver_connection, sql_name
from .events import for_outside_listeners
from .plumbing_tables import notify_channel, outbox_table

log = logging.getLogger(__name__)

PUBLISHED = Counter("outbox_published_total", "Outbox rows confirmed by the broker", ["service"])
UNROUTABLE = Counter("outbox_unroutable_total", "Outbox rows no queue was bound for", ["service"])
# What an event no queue took is marked with (it counts as sent, but retention keeps it); billing_shared.outbox
# lists and resends them, which replaces the mark.
UNROUTABLE_ERROR = "unroutable: no queue bound"
RELAY_ERRORS = Counter("outbox_relay_errors_total", "Relay iterations that failed", ["service"])
# How far below the highest id claimed the next claim starts: rows committed out of id order by this much are
# still found at once (ids are taken at commit time, see UnitOfWork.flush_outbox); others by the next full claim.
CLAIM_WINDOW = 1_000


def asyncpg_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        amqp_url: str,
        exchange: str,
        *,
        database_url: str,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        publish_copies: int = 1,
        connection: AbstractRobustConnection | None = None,
    ):
        self.db = db
        self.amqp_url = amqp_url
        self.exchange_name = exchange
        self.database_url = database_url
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.publish_copies = publish_copies
        self._connection = connection
        self._owns_connection = connection is None
        self._exchange: AbstractExchange | None = None
        self._wake = asyncio.Event()
        outbox = sql_name(outbox_table(db.schema))
        self.claim_sql = (
            f"SELECT id, event_id, routing_key, body::text AS body, body->>'type' AS type, "
            f"body->>'producer' AS producer, body->>'correlation_id' AS correlation_id FROM {outbox} "
            "WHERE published_at IS NULL AND id > $2 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
        )
        self.floor = 0  # claims look at ids above this one; see the module's doc
        self._full_claim_at = 0.0
        self._mark_sent = (
            f"UPDATE {outbox} SET published_at = $2, last_error = coalesce($3, last_error) WHERE id = ANY($1::bigint[])"
        )
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"{self.db.schema}-relay"),
            asyncio.create_task(self._listen(), name=f"{self.db.schema}-relay-listen"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        if self._owns_connection and self._connection is not None:
            await self._connection.close()

    async def _ensure_exchange(self) -> AbstractExchange:
        if self._exchange is None:
            if self._connection is None:
                self._connection = await amqp.connect(self.amqp_url, f"{self.db.schema}-relay")
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchange = await amqp.declare_exchange(channel, self.exchange_name)
        return self._exchange

    async def _listen(self) -> None:
        """Keep a LISTEN connection so a commit wakes the relay within milliseconds."""
        channel = notify_channel(self.db.schema)
        while not self._stopping:
            conn = None
            try:
                conn = await asyncpg.connect(asyncpg_dsn(self.database_url))
                await conn.add_listener(channel, lambda *_: self._wake.set())
                self._wake.set()  # catch up on anything committed while we were not listening
                while not conn.is_closed():
                    await asyncio.sleep(5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the poll keeps things moving meanwhile
                log.warning("outbox listener lost: %s", exc)
                await asyncio.sleep(1)
            finally:
                if conn is not None and not conn.is_closed():
                    with suppress(Exception):
                        await conn.close()

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            # Cleared before the claim, not after the batch: a commit whose NOTIFY arrives while a batch is under
            # way may be missing from that batch's claim, and must wake the next one rather than wait for the poll.
            self._wake.clear()
            try:
                published = await self.publish_batch()
                backoff = 0.1
                if published >= self.batch_size:
                    continue  # more waiting: keep draining
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                RELAY_ERRORS.labels(self.db.schema).inc()
                log.warning("outbox relay iteration failed, retrying in %.1fs: %s", backoff, exc)
                self._exchange = None if not self._connection or self._connection.is_closed else self._exchange
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)

    async def publish_batch(self) -> int:
        """Claim up to batch_size unsent rows, publish them together, mark the confirmed ones sent.

        On the session's driver connection (see billing_shared.db.driver_connection), with the envelope
        published as stored: a relay runs about one claim per committed transaction, so its statements are
        as hot as the consumer's."""
        exchange = await self._ensure_exchange()
        async with self.db.sessions() as session:
            driver = await driver_connection(session)
            rows = await driver.fetch(self.claim_sql, self.batch_size, self._claim_floor())
            if not rows:
                await session.commit()
                return 0
            self.floor = max(self.floor, rows[-1]["id"] - CLAIM_WINDOW)
            results = await asyncio.gather(*(self._publish(exchange, row) for row in rows), return_exceptions=True)
            sent, unroutable, failed = [], [], []
            for row, result in zip(rows, results):
                if isinstance(result, PublishError):
                    unroutable.append(row)
                elif isinstance(result, BaseException):
                    failed.append(result)
                else:
                    sent.append(row)
            now = clock.wall_now()
            if sent:
                await driver.execute(self._mark_sent, [row["id"] for row in sent], now, None)
            if unroutable:
                # A consumer here should have had these, but no queue is bound for them (yet): record it rather
                # than block the outbox forever. Retention keeps them, but nobody gets them until they are resent:
                # warn, with the command. (A fact only outside listeners hear counts as sent without one.)
                for row in unroutable:
                    log.warning(
                        "%s %s had no bound queue; kept in the outbox until resent: "
                        "python -m billing_shared.outbox resend --service %s --event-id %s",
                        row["type"], row["event_id"], self.db.schema, row["event_id"],
                    )
                await driver.execute(self._mark_sent, [row["id"] for row in unroutable], now, UNROUTABLE_ERROR)
            await session.commit()
            PUBLISHED.labels(self.db.schema).inc(len(sent))
            UNROUTABLE.labels(self.db.schema).inc(len(unroutable))
        if failed:
            raise failed[0]
        return len(rows)

    def _claim_floor(self) -> int:
        """Where this claim starts: above the floor, or from the beginning once per poll interval."""
        now = time.monotonic()
        if now < self._full_claim_at:
            return self.floor
        self._full_claim_at = now + self.poll_interval_s
        return 0

    async def _publish(self, exchange: AbstractExchange, row) -> None:
        message = amqp.message_from_json(
            row["body"], str(row["event_id"]), row["type"], row["producer"] or "", row["correlation_id"]
        )
        # Mandatory (the broker returns it if no queue takes it), except a fact for outside listeners only: it is
        # published for whoever listens, and one nobody hears is simply gone.
        mandatory = not for_outside_listeners(row["type"])
        for _ in range(self.publish_copies):
            await exchange.publish(message, routing_key=row["routing_key"], mandatory=mandatory)
