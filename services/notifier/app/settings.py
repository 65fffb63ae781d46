"""Notifier service settings (env vars; working local defaults: an SMTP sink on 127.0.0.1:1025)."""

from __future__ import annotations

from email.utils import parseaddr
from typing import ClassVar

from pydantic import model_validator

from billing_shared.settings import ServiceSettings


LOCAL_SENDER = "billing@example.com"
# Reserved for examples (RFC 2606): customers' mail servers reject or junk mail sent from it.
EXAMPLE_DOMAIN = "example.com"


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "notifier"

    # Each in-flight event holds one DB connection from its inbox row to its commit (PDF fetch and SMTP send
    # included), and customer.created briefly takes a second one for the projection: more in flight than the
    # pool serves only queues on it (API requests included). See _check_pool.
    prefetch: int = 8

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_use_tls: bool = False
    smtp_start_tls: bool = False
    smtp_timeout_s: float = 10.0  # one attempt up to DATA; then DATA and the server's verdict as long again
    smtp_attempts: int = 3
    smtp_backoff_initial_s: float = 0.5
    smtp_backoff_max_s: float = 4.0

    # The From address; a bare address or "Name <address>". The default's domain is refused in production.
    notifier_sender: str = LOCAL_SENDER
    public_base_url: str = "http://localhost:8080"
    # Optional: attach invoice PDFs, fetched from here (the gateway as the notifier reaches it) with the signed
    # link each invoice event carries. The API key (of an admin service account) is only for events from an
    # invoice service that signs no links: leave it unset otherwise, the notifier then holds no credential.
    notifier_invoice_api_url: str | None = None
    notifier_api_key: str | None = None
    notifier_invoice_api_timeout_s: float = 5.0

    @model_validator(mode="after")
    def _check_smtp(self) -> "Settings":
        if self.smtp_use_tls and self.smtp_start_tls:
            raise ValueError("SMTP_USE_TLS and SMTP_START_TLS are exclusive: pick implicit TLS or STARTTLS")
        if self.smtp_attempts < 1:
            raise ValueError("SMTP_ATTEMPTS must be at least 1")
        return self

    @model_validator(mode="after")
    def _stop_grace_covers_an_email(self) -> "Settings":
        # An email handler cancelled at shutdown after the SMTP accept but before its COMMIT sends the email again
        # on redelivery. Unless CONSUMER_STOP_GRACE_S is set, the grace covers the longest email: its PDF fetch,
        # then every SMTP attempt (up to DATA one timeout, DATA and the server's verdict another) with the longest
        # backoff (and its jitter) between them. 74 s by default.
        if "consumer_stop_grace_s" not in self.model_fields_set:
            backoff = self.smtp_backoff_max_s + self.smtp_backoff_initial_s
            longest = (
                self.notifier_invoice_api_timeout_s
                + self.smtp_attempts * 2 * self.smtp_timeout_s
                + (self.smtp_attempts - 1) * backoff
            )
            self.consumer_stop_grace_s = max(self.consumer_stop_grace_s, longest)
        return self

    @model_validator(mode="after")
    def _refuse_local_mail_settings_in_production(self) -> "Settings":
        if self.environment != "production":
            return self
        if (self.smtp_username or self.smtp_password) and not (self.smtp_use_tls or self.smtp_start_tls):
            raise ValueError(
                "SMTP_USERNAME / SMTP_PASSWORD need SMTP_USE_TLS or SMTP_START_TLS in production: "
                "without TLS the SMTP login crosses the network in clear"
            )
        domain = parseaddr(self.notifier_sender)[1].rpartition("@")[2].lower().rstrip(".")
        if domain == EXAMPLE_DOMAIN or domain.endswith("." + EXAMPLE_DOMAIN):
            raise ValueError(
                f"NOTIFIER_SENDER must be set in production: {self.notifier_sender!r} is at {EXAMPLE_DOMAIN}, "
                "a domain reserved for examples, whose mail customers' servers reject or junk"
            )
        return self

    @model_validator(mode="after")
    def _check_pool(self) -> "Settings":
        capacity = self.db_pool_size + self.db_max_overflow
        if self.prefetch < 1 or (self.run_consumer and self.prefetch + 1 > capacity):
            raise ValueError(
                f"PREFETCH={self.prefetch} with a pool of {capacity} connections (DB_POOL_SIZE + DB_MAX_OVERFLOW): "
                "each in-flight event holds one connection and customer.created needs one more for a moment, "
                f"so PREFETCH must be between 1 and {capacity - 1} (raise the pool or lower PREFETCH)"
            )
        return self
