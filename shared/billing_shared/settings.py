"""Settings every service shares, read from the environment with working local defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _normalized(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


# Where a service runs. One of three names, whatever their case: the checks that refuse local secrets run for
# "production" alone, so any other name ("Production ", "prod", "staging") must fail at start-up, not pass them by.
Environment = Annotated[Literal["local", "test", "production"], BeforeValidator(_normalized)]


class ServiceSettings(BaseSettings):
    """Common configuration; each service subclasses it and sets `service_name`."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    service_name: ClassVar[str] = "service"

    environment: Environment = Field("local", description="local | test | production")
    log_level: str = "INFO"

    database_url: str = ""
    # Six services share one Postgres (100 connections by default): keep each pool small. And fixed: SQLAlchemy
    # closes an overflow connection when it is returned, so a pool that overflows under steady load reconnects
    # all the time (a Postgres backend forked, asyncpg's prepared statements lost, per checkout).
    db_pool_size: int = 10
    db_max_overflow: int = 0

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    exchange: str = "billing.events"
    dead_letter_exchange: str = "billing.dlx"
    prefetch: int = 64
    delivery_limit: int = 5
    handler_retry_attempts: int = 3
    handler_retry_initial_s: float = 0.2
    handler_retry_max_s: float = 2.0
    redelivery_backoff_s: float = 1.0
    redelivery_backoff_max_s: float = 30.0
    # A handler that reports an Outage (SMTP down, say) has its message tried again every redelivery_backoff_max_s
    # for this long after the outage began, not dead-lettered after delivery_limit tries.
    outage_retry_s: float = Field(3 * 24 * 3600.0, gt=0)
    # An event waiting for an earlier one this service has not handled yet (its customer's customer.created), or
    # for a replica with its handler (a rolling upgrade), is tried again the same way for this long, then the DLQ.
    awaiting_retry_s: float = Field(6 * 3600.0, gt=0)
    # Events of `batchable` handlers that queue up under load are applied this many to a transaction, by at
    # most this many transactions at once (each holds one pool connection). 1 applies every event on its own.
    consumer_batch_max: int = Field(32, ge=1, le=500)
    consumer_batch_concurrency: int = Field(2, ge=1, le=16)
    # At shutdown the handlers under way get this long to finish before they are cancelled (their messages then
    # come back): at least the longest handler with an outside effect, which a cancel before COMMIT would repeat.
    # The container's stop timeout (compose `stop_grace_period`, 10 s by default) must exceed it.
    consumer_stop_grace_s: float = Field(5.0, ge=0)

    relay_batch_size: int = 500
    relay_poll_interval_s: float = 1.0
    # Fault-injection switch for tests: publish every event this many times (consumers must not care).
    relay_publish_copies: int = Field(1, ge=1, le=10)

    run_relay: bool = True
    run_consumer: bool = True
    # The periodic jobs: the service's own (billing run, dunning, reconciliation) and the plumbing retention.
    run_scheduler: bool = True

    # How long the plumbing keeps what it no longer needs (see billing_shared.retention), and how often it looks.
    outbox_keep_days: float = Field(7, gt=0)
    inbox_keep_days: float = Field(30, ge=1)
    idempotency_keep_hours: float = Field(48, ge=24)
    retention_interval_s: float = Field(3600, gt=0)

    jwt_issuer: str = "billing-customer"
    jwt_audience: str = "billing-api"
    jwt_public_key: str = ""
    jwt_public_key_file: Path | None = None

    @model_validator(mode="after")
    def _default_database_url(self) -> "ServiceSettings":
        if not self.database_url:
            # Locally each service connects as its own role, named like the service (trust auth).
            name = self.service_name
            self.database_url = f"postgresql+asyncpg://{name}@127.0.0.1:5432/billing"
        return self

    @property
    def schema(self) -> str:
        return self.service_name

    @property
    def queue(self) -> str:
        return self.service_name

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.service_name}.dlq"

    def public_key_pem(self) -> str:
        if self.jwt_public_key:
            return self.jwt_public_key
        if self.jwt_public_key_file and self.jwt_public_key_file.exists():
            return self.jwt_public_key_file.read_text()
        raise RuntimeError(
            "no JWT public key: set JWT_PUBLIC_KEY or JWT_PUBLIC_KEY_FILE "
            "(`make run` writes one to .run/keys/jwt_public.pem)"
        )
