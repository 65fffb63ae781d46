"""Builds the dunning service app (uvicorn --factory app.main:create_app)."""

from __future__ import annotations

from fastapi import FastAPI

from billing_shared.web import ServiceRuntime, create_service_app

from .api import cases, runs
from .handlers import BINDINGS, make_handlers
from .scheduler import run_periodically
from .settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; Settings() raises (naming DUNNING_RETRY_DAYS) on a bad schedule, so it never starts."""
    settings = settings or Settings()

    def start_scheduler(runtime: ServiceRuntime) -> None:
        if settings.run_scheduler:
            runtime.spawn(
                run_periodically(runtime.db, settings.dunning_scheduler_interval_s, settings.dunning_scheduler_batch_size),
                "dunning-scheduler",
            )

    return create_service_app(
        settings,
        title="Dunning service",
        description="Retry schedules for failed payments, escalation, suspension and recovery.",
        routers=[cases.router, runs.router],
        handlers=make_handlers(settings),
        bindings=BINDINGS,
        on_start=start_scheduler,
    )
