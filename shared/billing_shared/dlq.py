"""Dead letters: list what a service's DLQ holds and replay it to that service's queue.

    python -m billing_shared.dlq list   --service payment [--amqp-url URL] [--limit N]
    python -m billing_shared.dlq replay --service payment [--event-id ID ...] [--max-age-days DAYS] [--force]
                                        [--limit N]

A replay leaves in the DLQ every letter whose event is older than --max-age-days (by default INBOX_KEEP_DAYS, or
30: the inbox keep) and exits non-zero naming them; --force replays them too. A replay looks at the first
--limit letters (10000 by default) and exits non-zero saying how many it did not get to: run it again for those.

Exit status: 0 done; 1 a replay not done with all it was asked, what is left said (letters kept as too old or
not looked at, an --event-id no letter has); 2 nothing done (RabbitMQ out of reach or refusing us, no such DLQ, a
usage error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from . import clock
from .amqp import DEAD_QUEUE_HEADER, DEAD_REASON_HEADER, OUTAGE_SINCE_HEADER, RETRIES_HEADER, copy_for_another_try
from .ids import id_time


@dataclass
class DeadLetter:
    event_id: str | None
    type: str | None
    reason: str | None
    queue: str | None
    deaths: int
    body: Any


@dataclass
class TooOld:
    """A dead letter a replay left in the DLQ: its event may be older than the inbox keeps (age None: unknown)."""
    event_id: str | None
    age: timedelta | None


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


@dataclass
class DeadLetters:
    letters: list[DeadLetter]
    # How many the DLQ held, `letters` among them: more than those when the limit cut the list short. None: the
    # service has no DLQ (it consumes no events, or there is no such service).
    in_queue: int | None


class Unavailable(ConnectionError):  # an OSError, as the broker's own were: the HTTP API answers 503 for those
    """RabbitMQ out of reach or refusing us, or a queue not there: said in one line, the URL without password."""


def without_secrets(url: str) -> str:
    """A URL fit to print: no password, and no query (which may carry one)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    user, at, host = parts.netloc.rpartition("@")
    return urlunsplit((parts.scheme, f"{user.partition(':')[0]}@{host}" if at else host, parts.path, "", ""))


async def _connect(amqp_url: str) -> AbstractConnection:
    try:
        return await aio_pika.connect(amqp_url)
    except aio_pika.exceptions.ProtocolSyntaxError as exc:  # the broker closed the connection while opening it
        # Its reason is not kept (the error names the frame only): a vhost missing or not the user's, mostly.
        raise Unavailable(f"RabbitMQ at {without_secrets(amqp_url)} refused the connection (is the vhost right, "
                          "and may the user use it?)") from exc
    except (aio_pika.exceptions.AMQPError, OSError, TimeoutError, ValueError) as exc:
        raise Unavailable(f"cannot connect to RabbitMQ at {without_secrets(amqp_url)}: {exc}") from exc


async def _has_queue(connection: AbstractConnection, name: str) -> bool:
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, passive=True)
    except aio_pika.exceptions.ChannelClosed:  # which closes the channel
        return False
    await channel.close()
    return True


async def _drain(channel, queue_name: str, limit: int) -> tuple[list[AbstractIncomingMessage], int | None]:
    """Up to `limit` messages of the queue, held unacked, and how many it held (None: there is no such queue)."""
    try:
        # Passive declare: a service that consumes nothing has no DLQ, which means no dead letters.
        queue = await channel.declare_queue(queue_name, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return [], None
    messages = []
    while len(messages) < limit:
        message = await queue.get(no_ack=False, fail=False, timeout=5)
        if message is None:
            break
        messages.append(message)
    # The count is the declare's: a letter dead-lettered since may be among those taken.
    return messages, max(queue.declaration_result.message_count or 0, len(messages))


async def peek_dead_letters(amqp_url: str, service: str, limit: int = 100) -> DeadLetters:
    """The first `limit` dead letters (they stay in the queue), and how many the queue holds."""
    connection = await _connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        messages, in_queue = await _drain(channel, f"{service}.dlq", limit)
        letters = [_describe(m) for m in messages]
        for m in messages:
            await m.nack(requeue=True)
        return DeadLetters(letters, in_queue)


async def list_dead_letters(amqp_url: str, service: str, limit: int = 100) -> list[DeadLetter]:
    """Peek at up to `limit` dead letters (they stay in the queue)."""
    return (await peek_dead_letters(amqp_url, service, limit)).letters


def _normalised(event_id: str | uuid.UUID | None) -> str | None:
    """An event id as our outboxes write it (lower case, hyphens), however it was typed; one not a UUID as it is."""
    if event_id is None:
        return None
    try:
        return str(uuid.UUID(str(event_id)))
    except ValueError:
        return str(event_id)


def _age(event_id: str | None, now: datetime) -> timedelta | None:
    """How long ago the event was made, read from its UUIDv7 id; None when the id carries no time."""
    try:
        made = id_time(uuid.UUID(event_id))
    except (TypeError, ValueError):
        return None
    return None if made is None else now - made


# A replay holds every letter it takes unacked until it is done with all (one handed back at once would be taken
# again): this bounds what one run holds, in memory and on the broker.
REPLAY_LIMIT = 10_000


@dataclass
class Replay:
    replayed: int  # letters sent back to the service's queue
    kept: list[TooOld]
    examined: int  # letters looked at: the DLQ's first `limit`
    in_queue: int | None  # letters the DLQ held when the replay began, those looked at among them (None: no DLQ)
    found: set[str] = field(default_factory=set)  # the event ids asked for that a letter looked at had (normalised)


async def replay(
    amqp_url: str,
    service: str,
    event_ids: Collection[str | uuid.UUID] | None = None,
    limit: int = REPLAY_LIMIT,
    *,
    max_age: timedelta | None = None,
    force: bool = False,
) -> Replay:
    """Send the DLQ's first `limit` letters (those of `event_ids`, if given) back to the service's own queue: only
    that service sees them again.

    With `max_age` (the service's inbox keep), a letter whose event was made longer ago stays in the DLQ unless
    `force`d, and is listed in `kept`: the event may have been handled after all (its ack lost on every
    delivery), and the inbox row that would make a replay change nothing may be purged by now. A letter whose
    id carries no time (not a UUIDv7, so not made by our outboxes) counts as too old too: its age is unknown.
    """
    wanted = None if event_ids is None else {_normalised(event_id) for event_id in event_ids}
    connection = await _connect(amqp_url)
    replayed, kept, found = 0, [], set()
    now = clock.wall_now()
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        messages, in_queue = await _drain(channel, f"{service}.dlq", limit)
        if messages and not await _has_queue(connection, service):
            # Published to, the letters would come back unroutable: they stay in the DLQ (unacked, back on close).
            raise Unavailable(f"no queue {service} to replay {service}.dlq to at {without_secrets(amqp_url)}: it "
                              f"is declared when the {service} service starts")
        for message in messages:
            if wanted is not None:
                if (event_id := _normalised(message.message_id)) not in wanted:
                    await message.nack(requeue=True)
                    continue
                found.add(event_id)
            age = _age(message.message_id, now)
            if max_age is not None and not force and (age is None or age > max_age):
                await message.nack(requeue=True)
                kept.append(TooOld(message.message_id, age))
                continue
            # A fresh start: no death records, a full set of tries again, and a later outage waited out anew.
            again = copy_for_another_try(message, **{"x-replayed": True})
            for header in (RETRIES_HEADER, DEAD_REASON_HEADER, DEAD_QUEUE_HEADER, OUTAGE_SINCE_HEADER):
                again.headers.pop(header, None)
            await channel.default_exchange.publish(again, routing_key=service)
            await message.ack()  # only after the broker confirmed the replay
            replayed += 1
    return Replay(replayed, kept, len(messages), in_queue, found)


async def replay_dead_letters(
    amqp_url: str,
    service: str,
    event_ids: Collection[str | uuid.UUID] | None = None,
    limit: int = REPLAY_LIMIT,
    *,
    max_age: timedelta | None = None,
    force: bool = False,
    skipped: list[TooOld] | None = None,
) -> int:
    """replay(), as the HTTP API tells it: how many letters were sent; those kept are appended to `skipped`."""
    done = await replay(amqp_url, service, event_ids, limit, max_age=max_age, force=force)
    if skipped is not None:
        skipped.extend(done.kept)
    return done.replayed


def _positive_int(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m billing_shared.dlq", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("--service", required=True)
    parser.add_argument("--amqp-url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    # Not only UUIDs: the letters most often replayed by id are the ones kept back for an unknown age, whose
    # message id is no UUIDv7 (unreadable bytes, a foreign producer).
    parser.add_argument("--event-id", action="append", dest="event_ids", help="replay only this event")
    parser.add_argument("--limit", type=_positive_int, help=f"list: letters shown (100); replay: letters looked at "
                        f"({REPLAY_LIMIT}), each held unacked until the replay ends")
    parser.add_argument("--max-age-days", type=float, default=float(os.environ.get("INBOX_KEEP_DAYS", 30)))
    parser.add_argument("--force", action="store_true", help="replay letters older than --max-age-days too")
    args = parser.parse_args(argv)
    try:
        return _list(args) if args.command == "list" else _replay(args)
    except Unavailable as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2  # as for a usage error: nothing was done


def _no_dlq(args: argparse.Namespace) -> Unavailable:
    # A typo in --service looks like this too: an empty answer would pass for "no dead letters".
    return Unavailable(f"no queue {args.service}.dlq at {without_secrets(args.amqp_url)}: {args.service} consumes "
                       "no events there, so it has no dead letters (or it is not a service's name)")


def _list(args: argparse.Namespace) -> int:
    limit = args.limit or 100
    found = asyncio.run(peek_dead_letters(args.amqp_url, args.service, limit))
    if found.in_queue is None:
        raise _no_dlq(args)
    for letter in found.letters:
        print(json.dumps(asdict(letter), default=str))
    if found.in_queue > len(found.letters):
        print(f"first {len(found.letters)} of {found.in_queue} dead letter(s) in {args.service}.dlq (--limit {limit})")
    else:
        print(f"{len(found.letters)} dead letter(s) in {args.service}.dlq")
    return 0


def _replay(args: argparse.Namespace) -> int:
    ids = {_normalised(event_id) for event_id in args.event_ids} if args.event_ids else None
    limit, max_age = args.limit or REPLAY_LIMIT, timedelta(days=args.max_age_days)
    done = asyncio.run(replay(args.amqp_url, args.service, ids, limit, max_age=max_age, force=args.force))
    if done.in_queue is None:
        raise _no_dlq(args)
    print(f"replayed {done.replayed} dead letter(s) to {args.service}")
    for letter in done.kept:
        age = "unknown (not a UUIDv7)" if letter.age is None else f"{letter.age.total_seconds() / 86_400:.1f} days"
        print(f"kept {letter.event_id} in {args.service}.dlq, age {age} (--max-age-days {args.max_age_days:g})")
    if done.kept:
        print(f"The inbox may no longer hold these events. Check {args.service}'s own tables that an event was not "
              "applied, then re-run with --force (and --event-id ID) to replay it.")
    not_looked_at = done.in_queue - done.examined
    missing = [event_id for event_id in sorted(ids or ()) if str(event_id) not in done.found]
    looked_at = f" among the first {done.examined} of {done.in_queue} (--limit {limit})" if not_looked_at else ""
    for event_id in missing:
        print(f"no letter of event {event_id} in {args.service}.dlq{looked_at}")
    if not_looked_at and ids is None:
        print(f"{not_looked_at} more dead letter(s) in {args.service}.dlq not looked at (a replay takes the first "
              f"--limit {limit}): run the replay again for them")
    return 1 if done.kept or missing or (not_looked_at and ids is None) else 0


if __name__ == "__main__":
    raise SystemExit(main())
