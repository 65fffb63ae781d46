"""Dead letters: list what a service's DLQ holds and replay it to that service's queue.

    python -m billing_shared.dlq list   --service payment [--amqp-url URL]
    python -m billing_shared.dlq replay --service payment [--event-id ID ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from .amqp import DEAD_QUEUE_HEADER, DEAD_REASON_HEADER, OUTAGE_SINCE_HEADER, RETRIES_HEADER, copy_for_another_try


@dataclass
class DeadLetter:
    event_id: str | None
    type: str | None
    reason: str | None
    queue: str | None
    deaths: int
    body: Any


def _describe(message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers or {}
    deaths = headers.get("x-death") or []
    first = deaths[0] if deaths else {}
    try:
        body: Any = json.loads(message.body)
    except ValueError:
        body = message.body.decode(errors="replace")
    return DeadLetter(
        event_id=message.message_id,
        type=message.type,
        reason=_text(headers.get(DEAD_REASON_HEADER) or headers.get("x-first-death-reason") or first.get("reason")),
        queue=_text(headers.get(DEAD_QUEUE_HEADER) or headers.get("x-first-death-queue") or first.get("queue")),
        deaths=sum(int(d.get("count", 1)) for d in deaths) if deaths else _tries_given_up_after(headers),
        body=body,
    )


def _tries_given_up_after(headers: dict[str, Any]) -> int:
    """How often a message the consumer gave up on was tried (its later tries counted in RETRIES_HEADER)."""
    return int(headers.get(RETRIES_HEADER, 0)) + 1 if headers.get(DEAD_REASON_HEADER) else 0


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return None if value is None else str(value)


async def _drain(channel, queue_name: str, limit: int) -> list[AbstractIncomingMessage]:
    try:
        # Passive declare: a service that consumes nothing has no DLQ, which means no dead letters.
        queue = await channel.declare_queue(queue_name, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return []
    messages = []
    while len(messages) < limit:
        message = await queue.get(no_ack=False, fail=False, timeout=5)
        if message is None:
            break
        messages.append(message)
    return messages


async def list_dead_letters(amqp_url: str, service: str, limit: int = 100) -> list[DeadLetter]:
    """Peek at up to `limit` dead letters (they stay in the queue)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        messages = await _drain(channel, f"{service}.dlq", limit)
        letters = [_describe(m) for m in messages]
        for m in messages:
            await m.nack(requeue=True)
        return letters


async def replay_dead_letters(
    amqp_url: str, service: str, event_ids: set[str] | None = None, limit: int = 10_000
) -> int:
    """Send dead letters back to the service's own queue (only that service sees them again)."""
    connection = await aio_pika.connect(amqp_url)
    replayed = 0
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        messages = await _drain(channel, f"{service}.dlq", limit)
        for message in messages:
            if event_ids is not None and message.message_id not in event_ids:
                await message.nack(requeue=True)
                continue
            # A fresh start: no death records, a full set of tries again, and a later outage waited out anew.
            replay = copy_for_another_try(message, **{"x-replayed": True})
            for header in (RETRIES_HEADER, DEAD_REASON_HEADER, DEAD_QUEUE_HEADER, OUTAGE_SINCE_HEADER):
                replay.headers.pop(header, None)
            await channel.default_exchange.publish(replay, routing_key=service)
            await message.ack()  # only after the broker confirmed the replay
            replayed += 1
    return replayed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m billing_shared.dlq", description=__doc__)
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("--service", required=True)
    parser.add_argument("--amqp-url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--event-id", action="append", dest="event_ids")
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args(argv)
    if args.command == "list":
        letters = asyncio.run(list_dead_letters(args.amqp_url, args.service, args.limit))
        for letter in letters:
            print(json.dumps(asdict(letter), default=str))
        print(f"{len(letters)} dead letter(s) in {args.service}.dlq")
    else:
        ids = set(args.event_ids) if args.event_ids else None
        count = asyncio.run(replay_dead_letters(args.amqp_url, args.service, ids))
        print(f"replayed {count} dead letter(s) to {args.service}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
