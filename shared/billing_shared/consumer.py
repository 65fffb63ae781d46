"""The event consumer: at-least-once delivery in, exactly-once effect out (the inbox).

Each message is handled in one unit of work that first records its event id in the inbox (unique);
a redelivered event finds its id there and changes nothing. The message is acked only after commit.
A handler that keeps failing is retried with backoff in-process, then nacked; the queue's explicit
delivery limit dead-letters it to `<service>.dlq` without blocking the messages behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aio_pika.exceptions import AMQPError
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from . import amqp
from .db import Database, UnitOfWork
from .events import Envelope
from .logs import correlation_id
from .plumbing_tables import inbox_table

log = logging.getLogger(__name__)

Handler = Callable[[Envelope, UnitOfWork], Awaitable[None]]

HANDLED = Counter("events_handled_total", "Events handled", ["service", "type", "outcome"])
HANDLE_SECONDS = Histogram("event_handle_seconds", "Time to handle one event", ["service", "type"])


class Retryable(Exception):
    """Raised by a handler for a condition that may clear (e.g. SMTP down, projection not yet there)."""


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
        prefetch: int = 64,
        delivery_limit: int = 5,
        retry_attempts: int = 3,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 2.0,
        redelivery_backoff_s: float = 1.0,
        redelivery_backoff_max_s: float = 30.0,
        connection: AbstractRobustConnection | None = None,
    ):
        self.db = db
        self.service = service
        self.amqp_url = amqp_url
        self.exchange = exchange
        self.dead_letter_exchange = dead_letter_exchange
        self.handlers = handlers
        # event type → the only routing patterns to hear it under (e.g. "payment.succeeded.*.dunning");
        # any other type handled is heard whole (`<type>.#`)
        self.bindings = dict(bindings or {})
        self.prefetch = prefetch
        self.delivery_limit = delivery_limit
        self.retry_attempts = retry_attempts
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.redelivery_backoff_s = redelivery_backoff_s
        self.redelivery_backoff_max_s = redelivery_backoff_max_s
        self._connection = connection
        self._owns_connection = connection is None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._inbox = inbox_table(db.schema)
        self._in_flight: set[asyncio.Task] = set()

    async def start(self) -> None:
        if self._connection is None:
            self._connection = await amqp.connect(self.amqp_url, f"{self.service}-consumer")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        bindings, unbindings = amqp.binding_patterns(self.handlers, self.bindings)
        self._queue = await amqp.declare_service_queues(
            channel,
            service=self.service,
            exchange=self.exchange,
            dead_letter_exchange=self.dead_letter_exchange,
            delivery_limit=self.delivery_limit,
            bindings=bindings,
            unbindings=unbindings,
        )
        self._consumer_tag = await self._queue.consume(self._on_message)

    async def stop(self) -> None:
        if self._queue is not None and self._consumer_tag is not None:
            try:
                await self._queue.cancel(self._consumer_tag)
            except Exception:  # the connection may already be gone
                pass
        if self._in_flight:
            # Unacked messages are redelivered, so cancelling what is still running loses nothing.
            _, still_running = await asyncio.wait(self._in_flight, timeout=5)
            for task in still_running:
                task.cancel()
        if self._owns_connection and self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # aiormq cancels a channel's consumer callbacks when the connection drops. A handler cancelled between
        # its side effect (an SMTP accept, a gateway charge) and its COMMIT would do that effect again on
        # redelivery, so the work runs in its own task and finishes: it commits, its ack fails with the
        # channel, and the redelivered copy finds its inbox row. Only stop() cancels work, after a grace period.
        work = asyncio.create_task(self._handle_message(message))
        self._in_flight.add(work)
        work.add_done_callback(self._in_flight.discard)
        await asyncio.shield(work)

    async def _handle_message(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = Envelope.model_validate_json(message.body)
        except (ValueError, ValidationError) as exc:
            log.error("unreadable message %s dead-lettered: %s", message.message_id, exc)
            HANDLED.labels(self.service, message.type or "?", "unreadable").inc()
            await self._settle(message.reject(requeue=False))
            return
        handler = self.handlers.get(envelope.type)
        if handler is None:  # tolerant: a binding we no longer need
            await self._settle(message.ack())
            return
        token = correlation_id.set(envelope.correlation_id)
        try:
            with HANDLE_SECONDS.labels(self.service, envelope.type).time():
                outcome = await self._apply_with_retries(envelope, handler)
        except Exception as exc:
            deliveries = int((message.headers or {}).get("x-delivery-count", 0)) + 1
            log.warning(
                "handling %s %s failed (delivery %d of %d): %r",
                envelope.type,
                envelope.event_id,
                deliveries,
                self.delivery_limit + 1,
                exc,
            )
            HANDLED.labels(self.service, envelope.type, "failed").inc()
            # Hold the message a while before handing it back, so a passing outage (SMTP, a peer's
            # projection not there yet) does not burn the delivery limit in seconds. Other messages
            # keep flowing meanwhile: this only occupies one prefetch slot.
            await asyncio.sleep(min(self.redelivery_backoff_s * 2 ** (deliveries - 1), self.redelivery_backoff_max_s))
            await self._settle(message.nack(requeue=True))
            return
        finally:
            correlation_id.reset(token)
        HANDLED.labels(self.service, envelope.type, outcome).inc()
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
        except asyncio.CancelledError:
            raise
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
            first_time = (
                await uow.session.execute(
                    insert(self._inbox)
                    .values(event_id=envelope.event_id, event_type=envelope.type)
                    .on_conflict_do_nothing()
                    .returning(self._inbox.c.event_id)
                )
            ).first()
            if first_time is None:
                return "duplicate"
            await handler(envelope, uow)
            await uow.commit()
        return "handled"

