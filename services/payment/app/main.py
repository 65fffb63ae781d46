"""Builds the payment service app (uvicorn --factory app.main:create_app; `app.main:app` works too)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from billing_shared.web import ServiceRuntime, create_service_app

from .adapters.gateway import HttpMockGateway
from .api import operations, payment_methods, payments, refunds
from .context import PaymentContext
from .handlers import build_handlers
from .service_layer.reconciler import run_reconciler
from .settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    ctx = PaymentContext(settings)

    @asynccontextmanager
    async def gateway() -> AsyncIterator[None]:
        # Made on the running loop, before the consumer starts; closed after it has drained its in-flight charges.
        client = HttpMockGateway(
            settings.payment_gateway_url,
            timeout_s=settings.payment_gateway_timeout_s,
            attempts=settings.payment_gateway_attempts,
        )
        ctx.bind_gateway(client)
        try:
            yield
        finally:
            await client.aclose()

    def on_start(runtime: ServiceRuntime) -> None:
        if settings.run_scheduler:
            runtime.spawn(run_reconciler(ctx), "payment-reconciler")

    app = create_service_app(
        settings,
        title="Payment service",
        description="Payment methods (tokens, never card numbers), idempotent charges, refunds, reconciliation.",
        routers=[
            operations.router, payments.router, refunds.router, refunds.every_payments_router, payment_methods.router
        ],
        handlers=build_handlers(ctx),
        on_start=on_start,
        resources=gateway,
    )
    ctx.bind_database(app.state.runtime.db)
    app.state.payment = ctx
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn app.main:app` (the Dockerfile) builds the app on first access, not at import time.
    if name == "app":
        return create_app()
    raise AttributeError(name)
