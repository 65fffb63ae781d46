"""Subscription service settings (env vars; working local defaults)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from billing_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "subscription"

    subscription_billing_interval_s: float = Field(60.0, gt=0, description="seconds between scheduled billing runs")
    subscription_billing_batch_size: int = Field(500, ge=1, le=5000, description="subscriptions claimed per transaction")
    subscription_billing_concurrency: int = Field(
        2, ge=1, le=8, description="batches a billing run works on at once (each holds one pool connection)"
    )
    subscription_max_as_of_ahead_days: int = Field(
        3660, ge=0, description="how far past now an explicit billing-run as_of may reach (guards against typos)"
    )
