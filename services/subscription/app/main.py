"""Builds the subscription service app (uvicorn --factory app.main:create_app)."""

from __future__ import annotations

from fastapi import FastAPI

from billing_shared.idempotency import IdempotencyKeys
from billing_shared.web import ServiceRuntime, create_service_app

from .api import billing_runs, lifecycle, plans, subscriptions
from .handlers.registry import HANDLERS
from .service.scheduler import run_periodically
from .settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def start_scheduler(runtime: ServiceRuntime) -> None:
        if settings.run_scheduler:
            runtime.spawn(
                run_periodically(
                    runtime.db,
                    settings.subscription_billing_interval_s,
                    settings.subscription_billing_batch_size,
                    settings.subscription_billing_concurrency,
                ),
                "billing-scheduler",
            )

    app = create_service_app(
        settings,
        title="Subscription service",
        description="Plans, subscriptions, calendar-correct billing periods, proration, pause/resume and "
        "replica-safe billing runs.",
        routers=[plans.router, subscriptions.router, lifecycle.router, billing_runs.router],
        handlers=HANDLERS,
        on_start=start_scheduler,
    )
    app.state.idempotency = IdempotencyKeys(app.state.runtime.db)
    return app

