"""The event consumer: at-least-once delivery in, exactly-once effect out (the inbox).

Each message is handled in one unit of work that first records its event id in the inbox (unique);
a redelivered event finds its id there and changes nothing. The message is acked only after commit.
A handler that keeps failing is retried a few times in-process; then the message is handed back for a later
try through a delay queue (`<service>.retry.<ms>ms`, which returns it behind the others when its time is up) and
acked, so it holds no prefetch slot while it waits; after `delivery_limit` such tries it goes to `<service>.dlq`.
A handler that reports an `Outage` (something it needs is down, the message is fine), or whose database cannot
be reached, is not dead-lettered for it: its message keeps coming back at the longest delay until `outage_retry_s`
has passed since the outage began. One that reports `Awaiting` (an earlier event it builds on has not come yet),
or that no handler of this replica takes (a newer replica's, in a rolling upgrade), waits the same way for up to
`awaiting_retry_s`: shorter, since what it waits for may never come (an admin's typo), and the DLQ says so.
The queue's own delivery limit dead-letters a message that keeps crashing its consumer.
Events whose handlers are marked `batchable` (every effect in the unit of work) are applied several to a
transaction when they queue up under load; a batch that fails is retried one event at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPError
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from . import amqp
from .db import Database, UnitOfWork, database_unreachable, sql_name
from .events import Envelope, for_outside_listeners
from .logs import correlation_id
from .plumbing_tables import inbox_table

log = logging.getLogger(__name__)

Handler = Callable[[Envelope, UnitOfWork], Awaitable[None]]

HANDLED = Counter("events_handled_total", "Events handled", ["service", "type", "outcome"])
HANDLE_SECONDS = Histogram("event_handle_seconds", "Time to handle one event", ["service", "type"])
BATCH_SIZE = Histogram(
    "event_batch_size", "Events applied in one transaction (batches of two or more)", ["service"],
    buckets=(2, 4, 8, 16, 32, 64, 128),
)

H = TypeVar("H", bound=Handler)


def batchable(handler: H) -> H:
    """Mark a handler whose every effect is in its unit of work (no email sent, no gateway called, no
    transaction of its own): the consumer may apply several such events in one transaction, since rolling
    it back undoes all of them."""
    handler.batchable = True  # type: ignore[attr-defined]
    return handler


# How long stop() waits for the handlers it cancelled to unwind (roll back) before it closes anyway.
_UNWIND_S = 5.0


class Retryable(Exception):
    """Raised by a handler for a condition that may clear (e.g. a projection not yet there)."""


class Outage(Retryable):
    """Raised by a handler when a service it needs stays unavailable (e.g. SMTP) after its own retries.

    The message is fine, so it is not retried in-process and its tries are not counted toward the dead-letter
    queue: it waits out the outage at the longest retry delay, for up to `outage_retry_s`.
    """


class Awaiting(Outage):
    """Raised by a handler whose event builds on another that has not been handled here yet (its customer's
    customer.created, say). It waits like an outage, for up to `awaiting_retry_s`, then goes to the DLQ."""


def _tries_so_far(message: AbstractIncomingMessage) -> int:
    """How many later tries a message handed back has had (0 for its first delivery)."""
    return int((message.headers or {}).get(amqp.RETRIES_HEADER, 0))


class EventConsumer:
    def __init__(
        self,
        db: Database,
        *,
        service: str,
        amqp_url: str,
        exchange: str,
        dead_letter_exchange: str,
        handlers: dict[str, Handler],
        bindings: Mapping[str, Sequence[str]] | None = None,
        retired: Sequence[str] = (),
        prefetch: int = 64,
        delivery_limit: int = 5,
        retry_attempts: int = 3,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 2.0,
        redelivery_backoff_s: float = 1.0,
        redelivery_backoff_max_s: float = 30.0,
        outage_retry_s: float = 3 * 24 * 3600.0,
        awaiting_retry_s: float = 6 * 3600.0,
        batch_max: int = 32,
        batch_concurrency: int = 2,
        stop_grace_s: float = 5.0,
        connection: AbstractRobustConnection | None = None,
    ):
        self.db = db
        self.service = service
        self.amqp_url = amqp_url
        self.exchange = exchange
        self.dead_letter_exchange = dead_letter_exchange
        outside_only = sorted(t for t in handlers if for_outside_listeners(t))
        if outside_only:  # the relay counts them sent without a queue: a consumer here would miss some
            raise ValueError(f"{service} handles {', '.join(outside_only)}, marked for outside listeners only "
                             "(Event.for_outside_listeners): clear the mark on the contract to consume it here")
        self.handlers = handlers
        # event type → the only routing patterns to hear it under (e.g. "payment.succeeded.*.dunning");
        # any other type handled is heard whole (`<type>.#`)
        self.bindings = dict(bindings or {})
        # event types an earlier version handled and this one no longer does: their bindings are removed
        self.retired = tuple(retired)
        self.prefetch = prefetch
        self.delivery_limit = delivery_limit
        self.retry_attempts = retry_attempts
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.redelivery_backoff_s = redelivery_backoff_s
        self.redelivery_backoff_max_s = redelivery_backoff_max_s
        self.outage_retry_s = outage_retry_s
        self.awaiting_retry_s = awaiting_retry_s
        self.batch_max = batch_max
        self.batch_concurrency = batch_concurrency
        # how long stop() lets the handlers under way finish: at least the longest handler with an outside effect
        self.stop_grace_s = stop_grace_s
        self._connection = connection
        self._owns_connection = connection is None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        # Run on the unit of work's driver connection (see UnitOfWork.driver_connection): every event pays them.
        inbox = sql_name(inbox_table(db.schema))
        self._claim_one = (
            f"INSERT INTO {inbox} (event_id, event_type) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING RETURNING event_id"
        )
        self._claim_many = (
            f"INSERT INTO {inbox} (event_id, event_type) "
            "SELECT * FROM unnest($1::uuid[], $2::text[]) ON CONFLICT DO NOTHING RETURNING event_id"
        )
        self._in_flight: set[asyncio.Task] = set()
        # At most `prefetch` events are applied at once, across channels: after a reconnect the new channel is
        # handed up to `prefetch` deliveries (copies of those still under way among them) while the old ones
        # finish, and each would take a database connection (a copy waits on its inbox row meanwhile).
        self._slots = asyncio.Semaphore(prefetch)
        self._waiting: list[tuple[AbstractIncomingMessage, Envelope, Handler]] = []  # batchable, not yet applied
        self._batchers = 0
        # the wait before each later try: redelivery_backoff_s, doubling, at most redelivery_backoff_max_s
        self._retry_delays = [
            min(redelivery_backoff_s * 2**n, redelivery_backoff_max_s) for n in range(delivery_limit)
        ]
        self._publishing: AbstractChannel | None = None  # confirms the copies handed back for a later try
        self._later: AbstractExchange | None = None
        self._dead_letters: AbstractExchange | None = None

    async def start(self) -> None:
        if self._connection is None:
            self._connection = await amqp.connect(self.amqp_url, f"{self.service}-consumer")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        bindings, unbindings = amqp.binding_patterns(self.handlers, self.bindings, self.retired)
        self._queue = await amqp.declare_service_queues(
            channel,
            service=self.service,
            exchange=self.exchange,
            dead_letter_exchange=self.dead_letter_exchange,
            delivery_limit=self.delivery_limit,
            bindings=bindings,
            unbindings=unbindings,
        )
        await amqp.declare_retry_queues(channel, self.service, [*self._retry_delays, self.redelivery_backoff_max_s])
        self._publishing = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._later = self._publishing.default_exchange
        self._dead_letters = await self._publishing.get_exchange(self.dead_letter_exchange, ensure=False)
        self._consumer_tag = await self._queue.consume(self._on_message)

    async def stop(self) -> None:
        if self._queue is not None and self._consumer_tag is not None:
            try:
                await self._queue.cancel(self._consumer_tag)
            except Exception:  # the connection may already be gone
                pass
        if self._in_flight:
            await self._finish_in_flight()
        if self._publishing is not None and not self._owns_connection:
            try:
                await self._publishing.close()
            except Exception:  # the connection may already be gone
                pass
        if self._owns_connection and self._connection is not None:
            await self._connection.close()

    async def _finish_in_flight(self) -> None:
        """Give the handlers under way `stop_grace_s` to finish (commit, ack), then cancel the rest and wait until
        they have unwound: the caller closes the broker connection and the database next, which must not go from
        under a handler mid-flight. A cancelled handler's message is not acked, so it is redelivered; one cancelled
        between its outside effect (an SMTP accept) and its COMMIT would repeat that effect, hence the grace."""
        _, still_running = await asyncio.wait(set(self._in_flight), timeout=self.stop_grace_s)
        if not still_running:
            return
        log.warning("stopping: %d handler(s) still running after %g s cancelled", len(still_running), self.stop_grace_s)
        for task in still_running:
            task.cancel()
        # Unwinding rolls back on the database: bounded too, should it hang (the database gone at shutdown).
        _, stuck = await asyncio.wait(still_running, timeout=_UNWIND_S)
        if stuck:
            log.error("stopping: %d cancelled handler(s) still unwinding after %g s; closing anyway", len(stuck),
                      _UNWIND_S)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # aiormq cancels a channel's consumer callbacks when the connection drops. A handler cancelled between
        # its side effect (an SMTP accept, a gateway charge) and its COMMIT would do that effect again on
        # redelivery, so the work runs in a task of our own and finishes: it commits, its ack fails with the
        # channel, and the redelivered copy finds its inbox row. Only stop() cancels work, after a grace period.
        try:
            envelope = Envelope.model_validate_json(message.body)
        except (ValueError, ValidationError) as exc:
            log.error("unreadable message %s dead-lettered: %s", message.message_id, exc)
            HANDLED.labels(self.service, message.type or "?", "unreadable").inc()
            self._run(self._settle(message.reject(requeue=False)))
            return
        handler = self.handlers.get(envelope.type)
        if handler is None:
            # Bound for a handler this replica lacks: in a rolling upgrade, a newer replica's on the same queue.
            # Handed back for a later try (which a newer replica may take), never dropped. The message is fine, so
            # it waits as for an outage (however long the rollout takes, up to awaiting_retry_s), not the DLQ after
            # its few tries. A type whose handler was removed for good is listed in `retired`: its binding goes.
            tries = _tries_so_far(message)
            log.warning("no handler here for %s %s (try %d); handed back", envelope.type, envelope.event_id, tries + 1)
            HANDLED.labels(self.service, envelope.type, "no_handler").inc()
            self._run(self._try_later(message, tries, outage_wait_s=self.awaiting_retry_s))
            return
        if self.batch_max > 1 and getattr(handler, "batchable", False):
            self._waiting.append((message, envelope, handler))
            if self._batchers < self.batch_concurrency:
                self._batchers += 1
                self._run(self._handle_batches())
            return
        self._run(self._handle_message(message, envelope, handler))

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        work = asyncio.create_task(coro)
        self._in_flight.add(work)
        work.add_done_callback(self._in_flight.discard)

    async def _handle_batches(self) -> None:
        """Apply the waiting batchable events, up to batch_max in one transaction, until none wait. Under light
        load a batch is one event (no added latency); under load the events that queue meanwhile share one
        BEGIN, inbox INSERT, outbox INSERT and COMMIT."""
        try:
            while self._waiting:
                batch = self._waiting[: self.batch_max]
                del self._waiting[: self.batch_max]
                if len(batch) == 1:
                    await self._handle_message(*batch[0])
                else:
                    await self._handle_batch(batch)
        finally:
            self._batchers -= 1

    async def _handle_batch(self, batch: list[tuple[AbstractIncomingMessage, Envelope, Handler]]) -> None:
        started = time.perf_counter()
        try:
            outcomes = await self.apply_batch([(envelope, handler) for _, envelope, handler in batch])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # One event's failure must not hold back the others: each goes its own way (retries, DLQ).
            log.info("a batch of %d events failed (%r); handling them one by one", len(batch), exc)
            await asyncio.gather(*(self._handle_message(*delivery) for delivery in batch))
            return
        elapsed = time.perf_counter() - started
        BATCH_SIZE.labels(self.service).observe(len(batch))
        for (message, envelope, _), outcome in zip(batch, outcomes):
            HANDLED.labels(self.service, envelope.type, outcome).inc()
            HANDLE_SECONDS.labels(self.service, envelope.type).observe(elapsed)
            await self._settle(message.ack())

    async def _handle_message(self, message: AbstractIncomingMessage, envelope: Envelope, handler: Handler) -> None:
        async with self._slots:
            await self._handle_message_in_slot(message, envelope, handler)

    async def _handle_message_in_slot(
        self, message: AbstractIncomingMessage, envelope: Envelope, handler: Handler
    ) -> None:
        token = correlation_id.set(envelope.correlation_id)
        try:
            with HANDLE_SECONDS.labels(self.service, envelope.type).time():
                outcome = await self._apply_with_retries(envelope, handler)
        except Exception as exc:
            tries = _tries_so_far(message)
            # The service's own database down (a restart, a failover) is an outage too: the message is fine.
            outage = isinstance(exc, Outage) or database_unreachable(exc)
            of = "while the outage lasts" if outage else f"of {len(self._retry_delays) + 1}"
            log.warning("handling %s %s failed (try %d %s): %r", envelope.type, envelope.event_id, tries + 1, of, exc)
            HANDLED.labels(self.service, envelope.type, "failed").inc()
            waits = (self.awaiting_retry_s if isinstance(exc, Awaiting) else self.outage_retry_s) if outage else None
            await self._try_later(message, tries, outage_wait_s=waits)
            return
        finally:
            correlation_id.reset(token)
        HANDLED.labels(self.service, envelope.type, outcome).inc()
        await self._settle(message.ack())

    async def _try_later(
        self, message: AbstractIncomingMessage, tries: int, *, outage_wait_s: float | None = None
    ) -> None:
        """Hand a failed message back for a later try, or to the DLQ once it has had its tries (an outage's
        message, given `outage_wait_s`, once the outage has outlasted it).

        Not by holding it and requeueing it: a requeued message goes back to the head of the queue, so a few
        that fail together (emails for a customer whose customer.created waits behind them) would take every
        prefetch slot and starve the very message that would let them succeed. The copy is published with a
        broker confirm before the original is acked (a crash in between delivers it twice: the inbox absorbs it).
        """
        marks: dict[str, Any] = {amqp.RETRIES_HEADER: tries + 1}
        if outage_wait_s is not None:  # when this outage began for the message (ms): its first failure that was one
            now_ms = int(time.time() * 1000)
            marks[amqp.OUTAGE_SINCE_HEADER] = int((message.headers or {}).get(amqp.OUTAGE_SINCE_HEADER, now_ms))
        if tries < len(self._retry_delays):
            exchange = self._later
            key = amqp.retry_queue_name(self.service, self._retry_delays[tries])
            copy = amqp.copy_for_another_try(message, **marks)
        elif outage_wait_s is not None and now_ms - marks[amqp.OUTAGE_SINCE_HEADER] < outage_wait_s * 1000:
            exchange = self._later
            key = amqp.retry_queue_name(self.service, self.redelivery_backoff_max_s)
            copy = amqp.copy_for_another_try(message, **marks)
        else:
            exchange, key = self._dead_letters, self.service
            copy = amqp.copy_for_another_try(
                message, **{amqp.DEAD_REASON_HEADER: "delivery_limit", amqp.DEAD_QUEUE_HEADER: self.service}
            )
        try:
            assert exchange is not None, "the consumer is not started"
            await exchange.publish(copy, routing_key=key)
        except Exception as exc:  # the broker is away: the message comes back by itself, after a pause
            log.warning("could not hand %s back for a later try: %r", message.message_id, exc)
            await asyncio.sleep(self.redelivery_backoff_s)
            await self._settle(message.nack(requeue=True))
            return
        await self._settle(message.ack())

    @staticmethod
    async def _settle(settlement: Awaitable[None]) -> None:
        """Ack, nack or reject; on a channel that closed meanwhile the broker redelivers, which the inbox absorbs."""
        try:
            await settlement
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            log.info("could not settle a delivery (the broker will redeliver it): %r", exc)

    async def _apply_with_retries(self, envelope: Envelope, handler: Handler) -> str:
        try:  # the common case, without building the retry machinery
            return await self.apply(envelope, handler)
        except (asyncio.CancelledError, Outage):
            raise  # an outage was retried by the handler's own client: wait for it at the delay queues
        except Exception as exc:
            if self.retry_attempts <= 1:
                raise
            log.info("handling %s %s failed, retrying: %r", envelope.type, envelope.event_id, exc)
        await asyncio.sleep(self.retry_initial_s)
        outcome = "handled"
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.retry_attempts - 1),
            wait=wait_exponential(multiplier=self.retry_initial_s, max=self.retry_max_s),
            retry=retry_if_exception(lambda e: not isinstance(e, asyncio.CancelledError)),
            reraise=True,
        ):
            with attempt:
                outcome = await self.apply(envelope, handler)
        return outcome

    async def apply(self, envelope: Envelope, handler: Handler) -> str:
        """Run the handler and record the event in the inbox, in one transaction."""
        async with self.db.uow(causation_id=envelope.event_id) as uow:
            driver = await uow.driver_connection()
            if await driver.fetchval(self._claim_one, envelope.event_id, envelope.type) is None:
                return "duplicate"
            await handler(envelope, uow)
            await uow.commit()
        return "handled"

    async def apply_batch(self, items: Sequence[tuple[Envelope, Handler]]) -> list[str]:
        """Run each handler in turn and record every event in the inbox, all in one transaction: its outcome
        per event ("duplicate" for one the inbox had, or a second copy in the same batch)."""
        async with self.db.uow() as uow:
            driver = await uow.driver_connection()
            claimed = await driver.fetch(self._claim_many, [e.event_id for e, _ in items], [e.type for e, _ in items])
            fresh = {row[0] for row in claimed}
            outcomes = []
            for envelope, handler in items:
                if envelope.event_id not in fresh:
                    outcomes.append("duplicate")
                    continue
                fresh.discard(envelope.event_id)
                uow.caused_by(envelope)
                token = correlation_id.set(envelope.correlation_id)
                try:
                    await handler(envelope, uow)
                finally:
                    correlation_id.reset(token)
                outcomes.append("handled")
            await uow.commit()
        return outcomes
