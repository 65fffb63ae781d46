"""A lean load generator: a tiny keep-alive HTTP/1.1 client on asyncio, closed- and open-loop drivers.

It shares the cores with the system under test, so it does the least it can: no HTTP library, one
connection per request in flight, latencies kept as plain floats.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


class HttpError(Exception):
    pass


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# nginx closes a keep-alive connection after 75 s idle (keepalive_timeout); a request written into one it is
# closing gets no answer. Reopen well before that instead of guessing afterwards whether a POST went through.
MAX_IDLE_S = 30.0


class _Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def send(self, head: bytes, body: bytes) -> Response:
        if self.writer is not None and time.monotonic() - self.last_used > MAX_IDLE_S:
            self.close()
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked, close = None, False, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            payload = b"".join(parts)
        elif length is not None:
            payload = await self.reader.readexactly(length)
        else:
            payload = await self.reader.read()
            close = True
        if close:
            self.close()
        self.last_used = time.monotonic()
        return Response(status, payload)


class HttpPool:
    """Keep-alive connections to one host; `request` borrows one for the duration of a call."""

    def __init__(self, base_url: str, size: int = 64, timeout: float = 30.0):
        hostport = base_url.split("://", 1)[1].rstrip("/")
        host, _, port = hostport.partition(":")
        self.host, self.port = host, int(port or 80)
        self.timeout = timeout
        self._idle: asyncio.LifoQueue[_Connection] = asyncio.LifoQueue()
        for _ in range(size):
            self._idle.put_nowait(_Connection(self.host, self.port))
        self.default_headers: dict[str, str] = {}

    async def request(
        self, method: str, path: str, *, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        body = b"" if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        all_headers = {**self.default_headers, **(headers or {})}
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        if json_body is not None:
            head.append("Content-Type: application/json")
        head.extend(f"{k}: {v}" for k, v in all_headers.items())
        raw_head = ("\r\n".join(head) + "\r\n\r\n").encode()
        conn = await self._idle.get()
        try:
            for attempt in (1, 2):
                try:
                    return await asyncio.wait_for(conn.send(raw_head, body), self.timeout)
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    conn.close()
                    # A keep-alive connection the server closed while idle: retry once on a fresh one.
                    if attempt == 2 or method == "POST" and "Idempotency-Key" not in all_headers:
                        raise HttpError(f"{method} {path}: {exc!r}") from exc
                except BaseException:
                    conn.close()
                    raise
            raise AssertionError("unreachable")
        finally:
            self._idle.put_nowait(conn)

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Response:
        return await self.request("POST", path, **kw)

    async def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()


# --- statistics -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class LoadResult:
    started: float
    elapsed: float
    latencies: list[float] = field(default_factory=list)  # seconds, successful calls only
    outcomes: Counter = field(default_factory=Counter)  # "ok", "status 409", "error ..."
    values: list[Any] = field(default_factory=list)  # what the operations returned (successful calls)

    @property
    def ok(self) -> int:
        return self.outcomes["ok"]

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    def failures(self) -> dict[str, int]:
        return {k: v for k, v in self.outcomes.items() if k != "ok"}


Operation = Callable[[int], Awaitable[Any]]  # takes a sequence number; raises on failure

# Where the running operation's latency counts from (perf_counter), for an operation that times a later
# instant of its own (a mail's arrival) against the same start as the driver does.
_started_at: contextvars.ContextVar[float] = contextvars.ContextVar("started_at")


def started_at() -> float:
    """The perf_counter instant the running operation's latency counts from: its scheduled start in an open
    loop, the moment it was called in a closed one; never later than its request was sent."""
    return _started_at.get()


def _outcome(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 100 else text[:97] + "..."


async def _timed(op: Operation, n: int, since: float, result: LoadResult) -> None:
    """Run op(n) and record its outcome, with its latency counted from `since`."""
    _started_at.set(since)  # each open-loop call is its own task; a closed-loop worker's calls follow each other
    try:
        value = await op(n)
    except Exception as exc:
        result.outcomes[_outcome(exc)] += 1
        return
    result.latencies.append(time.perf_counter() - since)
    result.values.append(value)
    result.outcomes["ok"] += 1


async def closed_loop(op: Operation, *, concurrency: int, duration: float | None = None,
                      total: int | None = None) -> LoadResult:
    """`concurrency` workers call `op` back to back, for `duration` seconds or `total` calls."""
    counter = iter(range(10**12))
    started = time.perf_counter()
    deadline = started + duration if duration else math.inf
    result = LoadResult(time.time(), 0.0)

    async def worker() -> None:
        while time.perf_counter() < deadline:
            n = next(counter)
            if total is not None and n >= total:
                return
            await _timed(op, n, time.perf_counter(), result)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


async def open_loop(op: Operation, *, rate: float, duration: float, max_in_flight: int = 512) -> LoadResult:
    """Start `op` at a fixed rate whatever the responses do; latency counts from the scheduled start,
    so a stall shows up in the percentiles instead of quietly slowing the generator down."""
    started = time.perf_counter()
    result = LoadResult(time.time(), 0.0)
    in_flight: set[asyncio.Task] = set()
    interval = 1.0 / rate
    count = int(rate * duration)
    for n in range(count):
        scheduled = started + n * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= max_in_flight:
            result.outcomes["dropped (too many in flight)"] += 1
            continue
        task = asyncio.create_task(_timed(op, n, scheduled, result))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight)
    result.elapsed = time.perf_counter() - started
    return result


def expect(response: Response, *statuses: int) -> Response:
    if response.status not in statuses:
        raise HttpError(f"status {response.status}: {response.body[:200].decode(errors='replace')}")
    return response
