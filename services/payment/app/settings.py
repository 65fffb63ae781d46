"""Payment service settings (env vars; working local defaults, refused where they would be unsafe)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from billing_shared.settings import ServiceSettings

LOCAL_FINGERPRINT_KEY = "local-only-fingerprint-key"


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "payment"

    # Each in-flight charge or refund handler holds two connections at once (the consumer's inbox transaction
    # and its own short claim transaction, see service_layer/collect.py): 2 x prefetch must fit in the pool
    # (DB_POOL_SIZE + DB_MAX_OVERFLOW, 10 by default) or handlers holding one wait for a second until the
    # pool times out. See _prefetch_fits_the_pool.
    prefetch: int = 5

    payment_gateway_url: str = "http://127.0.0.1:8090"
    payment_gateway_timeout_s: float = Field(10.0, gt=0)
    # Tries per gateway call when the connection breaks before an answer (same idempotency key each time).
    payment_gateway_attempts: int = Field(3, ge=1, le=5)
    # HMAC key of card fingerprints; rotating it makes old fingerprints unmatchable, nothing worse.
    payment_fingerprint_key: str = LOCAL_FINGERPRINT_KEY
    # When to ask the gateway about a charge whose outcome is unknown: seconds after each previous check.
    payment_reconcile_after_s: Annotated[list[int], NoDecode] = [300, 3600, 86400]
    # A payment still pending this long after it was created is checked too (its request died mid-way).
    payment_pending_reconcile_after_s: int = Field(120, gt=0)
    payment_reconcile_interval_s: float = Field(30.0, gt=0)
    payment_reconcile_batch: int = Field(100, ge=1, le=1000)
    # A typo's as_of would find every charge under way "never made" at once, and fail payments that then succeed.
    payment_max_as_of_ahead_days: int = Field(
        3660, ge=0, description="how far past now an explicit reconciliation as_of may reach (guards against typos)"
    )

    @field_validator("payment_reconcile_after_s", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return [int(part) for part in value.replace(" ", "").split(",") if part]
            except ValueError:
                raise ValueError("PAYMENT_RECONCILE_AFTER_S must be comma-separated seconds, e.g. 300,3600,86400")
        return value

    @field_validator("payment_reconcile_after_s")
    @classmethod
    def _check_schedule(cls, value: list[int]) -> list[int]:
        if not value or any(s < 0 for s in value):
            raise ValueError("PAYMENT_RECONCILE_AFTER_S needs at least one non-negative number of seconds")
        return value

    @model_validator(mode="after")
    def _refuse_local_fingerprint_key_in_production(self) -> "Settings":
        if self.environment == "production" and self.payment_fingerprint_key in ("", LOCAL_FINGERPRINT_KEY):
            raise ValueError("PAYMENT_FINGERPRINT_KEY must be set to a secret in production")
        if not self.payment_fingerprint_key:
            raise ValueError("PAYMENT_FINGERPRINT_KEY must not be empty")
        return self

    @model_validator(mode="after")
    def _pending_grace_outlasts_a_gateway_call(self) -> "Settings":
        # Otherwise the reconciler could take a payment from a request that is still waiting for its answer.
        longest_call = self.payment_gateway_attempts * (self.payment_gateway_timeout_s + 0.5)
        if self.payment_pending_reconcile_after_s <= longest_call:
            raise ValueError(
                "PAYMENT_PENDING_RECONCILE_AFTER_S must exceed the longest gateway call, PAYMENT_GATEWAY_ATTEMPTS x "
                f"(PAYMENT_GATEWAY_TIMEOUT_S + 0.5 s backoff) = {longest_call:g} s"
            )
        return self

    @model_validator(mode="after")
    def _prefetch_fits_the_pool(self) -> "Settings":
        capacity = self.db_pool_size + self.db_max_overflow
        if self.prefetch < 1:
            raise ValueError("PREFETCH must be at least 1")
        if self.run_consumer and 2 * self.prefetch > capacity:
            raise ValueError(
                f"PREFETCH={self.prefetch} could starve the database pool: each in-flight charge holds two "
                f"connections, and DB_POOL_SIZE + DB_MAX_OVERFLOW is {capacity}; use PREFETCH <= {capacity // 2} "
                "or a larger pool"
            )
        return self

    @property
    def fingerprint_key(self) -> bytes:
        return self.payment_fingerprint_key.encode()
