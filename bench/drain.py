"""Until the work a step left queued is done: a service's outbox published, and the queues that hear its events
with nothing ready and nothing in a consumer's hands, read live (not from the broker's statistics, which lag).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from types import TracebackType

import aio_pika
import asyncpg

from .system import BenchSystem


async def _rabbitmqctl(*args: str) -> list[list[str]]:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", *args, "--no-table-headers",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {args[0]} failed ({proc.returncode}): {err.decode()[-500:]}")
    return [line.split("\t") for line in out.decode().splitlines() if line]


def queues_hearing(bindings: Iterable[list[str]], event_types: Iterable[str]) -> list[str]:
    """The queues bound to a pattern for one of these event types, and their retry queues (a message handed
    back for a later try waits there). Rows: source, destination, destination kind, routing key. A pattern
    that begins with the type may still not match every routing key of it (`payment.succeeded.invoice.*`):
    such a queue is waited for all the same, which can only make a drain look longer, never shorter."""
    rows = [row for row in bindings if len(row) == 4 and row[2] == "queue"]
    types = tuple(event_types)
    heard = {queue for _, queue, _, key in rows if any(key == t or key.startswith(f"{t}.") for t in types)}
    retries = {queue for _, queue, _, _ in rows if any(queue.startswith(f"{q}.retry.") for q in heard)}
    return sorted(heard | retries)


class Backlog:
    """One connection to the stack's vhost for the counts; `async with Backlog(...) as backlog`."""

    def __init__(self, amqp_url: str, vhost: str):
        self.amqp_url, self.vhost = amqp_url, vhost
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def __aenter__(self) -> Backlog:
        self._connection = await aio_pika.connect(self.amqp_url)
        self._channel = await self._connection.channel()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def queues_hearing(self, event_types: Iterable[str]) -> list[str]:
        rows = await _rabbitmqctl("list_bindings", "-p", self.vhost, "source_name", "destination_name",
                                  "destination_kind", "routing_key")
        return queues_hearing(rows, event_types)

    async def ready(self, queues: Iterable[str]) -> int:
        """Messages waiting in these queues: a passive declare answers from the queue itself, at once."""
        assert self._channel is not None
        total = 0
        for name in queues:
            declared = await self._channel.declare_queue(name, passive=True)
            total += declared.declaration_result.message_count or 0
        return total

    async def unacknowledged(self) -> int:
        """Deliveries a consumer of the vhost holds and has not acknowledged yet (being handled, or waiting in
        a batch): each channel counts its own on request. `rabbitmqctl list_queues` would be simpler, but its
        counts of quorum queues come from statistics emitted every few seconds."""
        rows = await _rabbitmqctl("list_channels", "vhost", "messages_unacknowledged")
        return sum(int(row[1]) for row in rows if len(row) == 2 and row[0] == self.vhost)


async def outbox_drained(system: BenchSystem, service: str, *, timeout_s: float) -> None:
    """Wait until the service's relay has published every event of its outbox."""
    conn = await asyncpg.connect(system.database_dsn())
    deadline = time.perf_counter() + timeout_s
    try:
        while await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {service}.outbox WHERE published_at IS NULL)"):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{service}'s outbox not drained after {timeout_s:.0f}s")
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def outbox_position(system: BenchSystem, service: str) -> int:
    """The id of the service's last outbox row so far: what it writes after this has a larger one."""
    conn = await asyncpg.connect(system.database_dsn())
    try:
        return await conn.fetchval(f"SELECT coalesce(max(id), 0) FROM {service}.outbox")
    finally:
        await conn.close()


async def consumed(system: BenchSystem, service: str, after_row: int, *, timeout_s: float) -> None:
    """Wait until the service's outbox is published and the queues hearing the event types it wrote after
    outbox row `after_row` hold nothing ready, with no delivery in a consumer's hands anywhere in the stack:
    the work its accepted requests left queued is done."""
    deadline = time.perf_counter() + timeout_s
    conn = await asyncpg.connect(system.database_dsn())
    try:
        keys = await conn.fetch(f"SELECT DISTINCT routing_key FROM {service}.outbox WHERE id > $1", after_row)
    finally:
        await conn.close()
    types = {".".join(row["routing_key"].split(".")[:2]) for row in keys}  # <aggregate>.<fact>[.routing words]
    async with Backlog(system.amqp_url, system.vhost) as backlog:
        queues = await backlog.queues_hearing(types)
        while True:
            await outbox_drained(system, service, timeout_s=max(deadline - time.perf_counter(), 0.0))
            # The cheap live count first; the unacknowledged count takes a rabbitmqctl call (~0.3 s), which
            # can only make the drain look longer than it was, never shorter.
            if await backlog.ready(queues) == 0 and await backlog.unacknowledged() == 0:
                return
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the consumers of {service}'s events not idle after {timeout_s:.0f}s")
            await asyncio.sleep(0.02)
