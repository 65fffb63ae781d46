"""Deliver an email message over SMTP on pooled, reused connections, retrying transient failures with backoff.

Transient failures that outlast the retries raise SmtpUnavailable (the consumer tries the event again later);
permanent 5xx refusals of the message raise SmtpRejected (retrying cannot help: the delivery logs it as rejected).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from email.message import Message

import aiosmtplib
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

logger = logging.getLogger(__name__)


class SmtpUnavailable(Exception):
    """The server could not be reached, answered 4xx or refused the client (its login, relaying for it) on every
    attempt; the message was not sent."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class SmtpRecipientRefusedByPolicy(SmtpUnavailable):
    """The recipient was refused with a 5.7.x (security or policy) reply on every attempt. That may be this client's
    standing (a relay refusing to relay), which every email meets until the setup is fixed, or a policy about this
    recipient alone: only the server's text tells. So it is no outage to wait out for days, but not final either:
    its tries, then the DLQ, for a replay once the setup is fixed."""


class SmtpRejected(Exception):
    """The server refused this message for good (5xx to its recipient or content); sending it again will not help."""


# RFC 3463 class 5.7 (security or policy), e.g. "554 5.7.1 Relay access denied", "530 5.7.0 Authentication required".
_SECURITY_OR_POLICY = re.compile(r"5\.7\.\d{1,3}(?!\S)")


def _refuses_the_client(refusal: aiosmtplib.SMTPResponseException) -> bool:
    """A 5.7.x refusal at MAIL or RCPT: of this client's standing (relay denied, login required, its address
    blocked), which every email meets alike until the setup is fixed, not of this recipient (5.1.x, unknown)."""
    return 500 <= refusal.code < 600 and _SECURITY_OR_POLICY.match(refusal.message.lstrip()) is not None


def _refused_by_policy_at_rcpt(error: BaseException) -> bool:
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return any(_refuses_the_client(refusal) for refusal in error.recipients) and is_transient(error)
    return isinstance(error, aiosmtplib.SMTPRecipientRefused) and _refuses_the_client(error)


def is_transient(error: BaseException) -> bool:
    """Only a 5xx refusal of this message is final: of its recipient, its content or size, its SMTPUTF8 address.

    Anything else is retried: connection trouble, timeouts, 4xx replies, and refusals of the client rather than
    of the message (a wrong password, AUTH or STARTTLS required, HELO refused, relay access denied). Those would
    refuse every email alike until the setup is fixed, so the emails wait (retries, then the DLQ for replay)
    instead of being lost. At DATA a 5.7.x stays final: there it judges this message's content (spam, DMARC).
    """
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return all(400 <= refusal.code < 500 or _refuses_the_client(refusal) for refusal in error.recipients)
    if isinstance(error, aiosmtplib.SMTPNotSupported):
        return False  # this message's non-ASCII local part needs SMTPUTF8, which the server lacks
    at_mail_or_rcpt = (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPRecipientRefused)
    if isinstance(error, at_mail_or_rcpt) and _refuses_the_client(error):
        return True
    if isinstance(error, (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError)) or (
        isinstance(error, aiosmtplib.SMTPSenderRefused) and error.code == 552  # MAIL FROM .. SIZE= too large
    ):
        return not 500 <= error.code < 600
    return isinstance(error, (aiosmtplib.SMTPException, OSError))


class _Connection(aiosmtplib.SMTP):
    """An SMTP client that remembers whether this transaction reached DATA (past which a resend may duplicate)."""

    data_started = False
    deadline: asyncio.Timeout | None = None  # the attempt's, while one is under way on this connection

    async def data(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.data_started = True
        if self.deadline is not None and self.timeout is not None:
            # From DATA on, cutting the wait short is what sends an email twice (a server that accepts it after we
            # gave up): the message and the server's verdict get a whole `timeout` of their own, whatever is left.
            when = asyncio.get_running_loop().time() + self.timeout
            self.deadline.reschedule(max(self.deadline.when() or when, when))
        return await super().data(*args, **kwargs)


def _connection_lost(error: BaseException) -> bool:
    """The connection broke (or the server said it is closing it) rather than refusing this message."""
    if isinstance(error, aiosmtplib.SMTPResponseException) and error.code == 421:
        return True
    return isinstance(error, (ConnectionError, TimeoutError, aiosmtplib.SMTPServerDisconnected))


class SmtpSender:
    """Sends over a small pool of kept-open connections; safe to share between concurrent tasks.

    A connection is taken from the pool for one message and put back after the server accepted it; any error
    closes it. A pooled connection the server has dropped meanwhile (idle timeout, restart) is noticed on use:
    if the failure came before the DATA command, the message is sent once more on a fresh connection at once
    (nothing was accepted, so nothing can be doubled); later failures go to the backoff retries as before.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        start_tls: bool = False,
        timeout: float = 10,
        *,
        attempts: int = 4,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        pool_size: int = 1,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.use_tls = use_tls
        self.start_tls = start_tls
        self.timeout = timeout
        self.attempts = attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.pool_size = pool_size
        self._idle: list[_Connection] = []  # connected, between transactions; at most pool_size
        self._local_hostname: str | None = None  # EHLO name, looked up once (aiosmtplib would per connection)
        self.connections_opened = 0

    async def send(self, message: Message) -> None:
        """Deliver to the recipients in the message's headers; SmtpUnavailable or SmtpRejected if it cannot."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            # Jitter keeps many replicas that lost the same server from reconnecting in lockstep.
            wait=wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max)
            + wait_random(0, self.backoff_initial),
            retry=retry_if_exception(is_transient),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._send_once(message)
        except (aiosmtplib.SMTPException, OSError) as error:
            raise self._classify(error) from error

    async def aclose(self) -> None:
        """QUIT every pooled connection (at shutdown); the sender reconnects if used again."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._close(connection, polite=True) for connection in idle))

    async def _send_once(self, message: Message) -> None:
        # `timeout` bounds the attempt up to DATA, not only each command (aiosmtplib's own timeout): a server
        # answering every command just in time must not hold an email, or the notifier's shutdown grace, for minutes.
        # DATA and the server's verdict then get a `timeout` of their own (see _Connection.data): at most two in all.
        async with asyncio.timeout(self.timeout) as deadline:
            await self._send_on_any_connection(message, deadline)

    async def _send_on_any_connection(self, message: Message, deadline: asyncio.Timeout) -> None:
        connection = self._checkout()
        if connection is not None:
            try:
                await self._transact(connection, message, deadline)
                return
            except (aiosmtplib.SMTPException, OSError) as error:
                if connection.data_started or not _connection_lost(error):
                    raise
                logger.info("pooled smtp connection to %s:%s was lost (%r); reconnecting", self.host, self.port, error)
        await self._transact(await self._connect(), message, deadline)

    async def _transact(self, connection: _Connection, message: Message, deadline: asyncio.Timeout) -> None:
        connection.data_started, connection.deadline = False, deadline
        try:
            await connection.send_message(message)
        except BaseException:
            await self._close(connection, polite=False)
            raise
        finally:
            connection.deadline = None
        if len(self._idle) < self.pool_size and connection.is_connected:
            self._idle.append(connection)
        else:
            await self._close(connection, polite=True)

    def _checkout(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.is_connected:
                return connection
        return None

    async def _connect(self) -> _Connection:
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        connection = _Connection(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            # Explicit False: aiosmtplib's default (None) upgrades opportunistically, which we want to be a setting.
            start_tls=self.start_tls,
            timeout=self.timeout,
            local_hostname=self._local_hostname,
        )
        await connection.connect()
        self.connections_opened += 1
        return connection

    @staticmethod
    async def _close(connection: _Connection, *, polite: bool) -> None:
        if polite and connection.is_connected:
            try:
                await connection.quit()
                return
            except (aiosmtplib.SMTPException, OSError):
                pass
        connection.close()

    def _classify(self, error: BaseException) -> Exception:
        where = f"{self.host}:{self.port}"
        if _refused_by_policy_at_rcpt(error):
            return SmtpRecipientRefusedByPolicy(
                f"SMTP server {where} refused the recipient on {self.attempts} attempts: {error}", self.attempts
            )
        if is_transient(error):
            return SmtpUnavailable(
                f"SMTP server {where} unavailable after {self.attempts} attempts: {error}", self.attempts
            )
        return SmtpRejected(f"SMTP server {where} rejected the message: {error}")

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "smtp send to %s:%s failed (attempt %d of %d): %r; retrying in %.2fs",
            self.host,
            self.port,
            state.attempt_number,
            self.attempts,
            error,
            delay,
        )
