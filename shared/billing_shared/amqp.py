"""RabbitMQ topology and connections: one topic exchange, one quorum queue per service, one DLQ each."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aio_pika
from aio_pika.exceptions import ChannelPreconditionFailed
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from .events import Envelope

log = logging.getLogger(__name__)


async def connect(amqp_url: str, name: str) -> AbstractRobustConnection:
    """A robust connection: aio-pika reconnects it and restores channels, queues and consumers."""
    return await aio_pika.connect_robust(amqp_url, client_properties={"connection_name": name})


async def declare_exchange(channel: AbstractChannel, name: str) -> AbstractExchange:
    return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)


def queue_arguments(service: str, dead_letter_exchange: str, delivery_limit: int) -> dict[str, Any]:
    # RabbitMQ 3.10: the limit must be explicit, and at-least-once dead-lettering needs reject-publish.
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": dead_letter_exchange,
        "x-dead-letter-routing-key": service,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare_service_queues(
    channel: AbstractChannel,
    *,
    service: str,
    exchange: str,
    dead_letter_exchange: str,
    delivery_limit: int,
    bindings: list[str],
    unbindings: Sequence[str] = (),
) -> AbstractQueue:
    """Declare the service's queue bound to these patterns, and its dead-letter queue. `unbindings` are
    patterns an earlier version bound that must go (unbinding one that is not there is no error)."""
    events = await declare_exchange(channel, exchange)
    dlx = await channel.declare_exchange(dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    dlq = await channel.declare_queue(f"{service}.dlq", durable=True, arguments={"x-queue-type": "quorum"})
    await dlq.bind(dlx, routing_key=service)
    arguments = queue_arguments(service, dead_letter_exchange, delivery_limit)
    try:
        queue = await channel.declare_queue(service, durable=True, arguments=arguments)
    except ChannelPreconditionFailed as exc:
        # A queue's arguments are fixed when it is made: a changed DELIVERY_LIMIT cannot apply to it. Refusing
        # to start would stop every replica at a redeploy; the queue is used as it is, and said so, loudly.
        log.error("queue %s exists with other arguments than %s, and is used as it is (to apply them, drain and "
                  "delete it, or set a policy): %s", service, arguments, exc)
        await channel.reopen()
        queue = await channel.declare_queue(service, passive=True)
    for pattern in bindings:
        await queue.bind(events, routing_key=pattern)
    for pattern in unbindings:
        await queue.unbind(events, routing_key=pattern)
    return queue


# A message handed back for a later try carries how many tries it has had; one given up on carries why, and
# where from, in place of the broker's x-first-death-* headers (it reaches the DLQ by a publish, not a death).
RETRIES_HEADER = "x-billing-retries"
DEAD_REASON_HEADER = "x-billing-dead-reason"
DEAD_QUEUE_HEADER = "x-billing-dead-queue"
OUTAGE_SINCE_HEADER = "x-billing-outage-since"  # Unix time (ms) of the first failure an Outage caused
_DEATH_HEADERS = ("x-death", "x-first-death", "x-last-death")


def retry_queue_name(service: str, delay_s: float) -> str:
    return f"{service}.retry.{round(delay_s * 1000)}ms"


async def declare_retry_queues(channel: AbstractChannel, service: str, delays_s: Iterable[float]) -> None:
    """One delay queue per retry delay: a message published to it waits there (no consumer) until its TTL,
    then the broker dead-letters it back to the service's queue, behind what arrived meanwhile. One queue per
    delay, because a queue expires messages only from its head."""
    for delay in sorted(set(delays_s)):
        await channel.declare_queue(
            retry_queue_name(service, delay),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-message-ttl": round(delay * 1000),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": service,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )


def copy_for_another_try(message: AbstractIncomingMessage, **headers: Any) -> aio_pika.Message:
    """The delivered message as a new persistent message, without the broker's death records, plus `headers`."""
    kept = {k: v for k, v in (message.headers or {}).items() if not k.startswith(_DEATH_HEADERS)}
    return aio_pika.Message(
        body=message.body,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        type=message.type,
        correlation_id=message.correlation_id,
        headers={**kept, **headers},
    )


def binding_patterns(
    event_types: Iterable[str], narrowed: Mapping[str, Sequence[str]], retired: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """(bind, unbind) for a consumer of these event types: `<type>.#` hears every event of a type; a type in
    `narrowed` is bound only to its patterns (words after the type, see Event.routing_key), plus the bare type
    that a producer from before routing words publishes under, and its `<type>.#` from before is unbound. A
    `retired` type (handled by an earlier version, no longer) loses every binding it had."""
    bind: list[str] = []
    unbind: list[str] = [pattern for event_type in retired for pattern in (event_type, f"{event_type}.#")]
    for event_type in sorted(event_types):
        if event_type in narrowed:
            bind += [event_type, *narrowed[event_type]]
            unbind.append(f"{event_type}.#")
        else:
            bind.append(f"{event_type}.#")
    return bind, unbind


def envelope_message(body: dict[str, Any] | Envelope) -> aio_pika.Message:
    """The AMQP message for an envelope: persistent, JSON, ids and correlation id in properties and headers."""
    if isinstance(body, Envelope):
        body = body.model_dump(mode="json")
    return message_from_json(
        json.dumps(body, separators=(",", ":")), str(body["event_id"]), body["type"], body.get("producer") or "",
        body.get("correlation_id"),
    )


def message_from_json(
    body_json: str, event_id: str, event_type: str, producer: str, correlation_id: str | None
) -> aio_pika.Message:
    """The AMQP message for an envelope already in JSON (an outbox row), with the facts it carries beside it."""
    headers: dict[str, Any] = {"x-producer": producer}
    if correlation_id:
        headers["x-correlation-id"] = correlation_id
    return aio_pika.Message(
        body=body_json.encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event_id,
        type=event_type,
        correlation_id=correlation_id,
        headers=headers,
    )
