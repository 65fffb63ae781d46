"""Deliver an EmailMessage over SMTP, retrying transient failures with exponential backoff.

Transient failures that outlast the retries raise SmtpUnavailable (the consumer nacks, the event comes back later);
permanent 5xx refusals raise SmtpRejected (retrying cannot help, so the consumer dead-letters it).
"""

from __future__ import annotations

import logging
from email.message import EmailMessage

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
    """The server could not be reached or answered 4xx on every attempt; the message was not sent."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class SmtpRejected(Exception):
    """The server refused the message for good (5xx); sending it again will not help."""


def is_transient(error: BaseException) -> bool:
    """Connection trouble, timeouts and 4xx replies are worth retrying; 5xx replies are not."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return all(400 <= refusal.code < 500 for refusal in error.recipients)
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True  # includes SMTPConnectError, SMTPServerDisconnected, SMTPTimeoutError
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return 400 <= error.code < 500
    return isinstance(error, OSError)


class SmtpSender:
    """Sends each message on its own connection; safe to share between concurrent tasks."""

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
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
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

    async def send(self, message: EmailMessage) -> None:
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

    async def _send_once(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            # Explicit False: aiosmtplib's default (None) upgrades opportunistically, which we want to be a setting.
            start_tls=self.start_tls,
            timeout=self.timeout,
        )

    def _classify(self, error: BaseException) -> Exception:
        where = f"{self.host}:{self.port}"
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
