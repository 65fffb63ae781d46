"""An SMTP sink inside the benchmark: records when each mail arrived, to whom, with which subject.

It replaces the stack's file-writing sink, so a flow's end (its email) is seen the moment it lands, with no
folder to scan, and waiting coroutines are woken from the sink's thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Mail:
    arrived: float  # time.time()
    to: str
    subject: str
    # time.perf_counter(): monotonic and the same clock in every thread, so a latency against the load
    # generator's start instants cannot be bent by a wall-clock step
    arrived_perf: float


class _Waiter:
    def __init__(self, prefix: str, count: int, future: asyncio.Future):
        self.prefix, self.count, self.future = prefix, count, future


class MailSink:
    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.host, self.port = host, port
        self.mails: list[Mail] = []
        self.by_recipient: dict[str, list[Mail]] = defaultdict(list)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, list[_Waiter]] = defaultdict(list)
        self._parser = BytesHeaderParser(policy=default_policy)
        self._controller = Controller(self, hostname=host, port=port, ready_timeout=10)

    # --- aiosmtpd hook (runs on the sink's own thread) ----------------------------------------

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        arrived, arrived_perf = time.time(), time.perf_counter()
        headers = self._parser.parsebytes(envelope.original_content or envelope.content)
        subject = str(headers.get("Subject", ""))
        for rcpt in envelope.rcpt_tos:
            mail = Mail(arrived, rcpt.lower(), subject, arrived_perf)
            self.mails.append(mail)
            self.by_recipient[mail.to].append(mail)
            if self._loop is not None and self._waiters.get(mail.to):
                self._loop.call_soon_threadsafe(self._wake, mail.to)
        return "250 Message accepted for delivery"

    # --- the benchmark's side (runs on its event loop) -----------------------------------------

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def matching(self, to: str, prefix: str) -> list[Mail]:
        return [m for m in list(self.by_recipient.get(to.lower(), ())) if m.subject.startswith(prefix)]

    def _wake(self, to: str) -> None:
        waiters = self._waiters.get(to, [])
        for waiter in list(waiters):
            found = self.matching(to, waiter.prefix)
            if len(found) >= waiter.count and not waiter.future.done():
                waiter.future.set_result(found[waiter.count - 1])
            if waiter.future.done():
                waiters.remove(waiter)

    async def wait(self, to: str, prefix: str, count: int = 1, timeout: float = 60.0) -> Mail:
        """The `count`-th mail to `to` whose subject starts with `prefix` (at once if it already came)."""
        to = to.lower()
        found = self.matching(to, prefix)
        if len(found) >= count:
            return found[count - 1]
        future = asyncio.get_running_loop().create_future()
        waiter = _Waiter(prefix, count, future)
        self._waiters[to].append(waiter)
        self._wake(to)  # a mail may have landed between the check and the registration
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no mail #{count} {prefix!r} to {to} within {timeout:.0f}s") from None
        finally:
            if waiter in self._waiters.get(to, []):
                self._waiters[to].remove(waiter)
