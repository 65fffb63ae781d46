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

    def on_start(runtime: ServiceRuntime) -> None:
        # Made on the running loop; closed only after the consumer has drained its in-flight charges.
        ctx.bind_gateway(HttpMockGateway(
            settings.payment_gateway_url,
            timeout_s=settings.payment_gateway_timeout_s,
            attempts=settings.payment_gateway_attempts,
        ))
        if settings.run_scheduler:
            runtime.spawn(run_reconciler(ctx), "payment-reconciler")

    app = create_service_app(
        settings,
        title="Payment service",
        description="Payment methods (tokens, never card numbers), idempotent charges, refunds, reconciliation.",
        routers=[operations.router, payments.router, refunds.router, payment_methods.router],
        handlers=build_handlers(ctx),
        on_start=on_start,
    )
    ctx.bind_database(app.state.runtime.db)
    app.state.payment = ctx

    service_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with service_lifespan(app):
                yield
        finally:
            if ctx.has_gateway and isinstance(ctx.gateway, HttpMockGateway):
                await ctx.gateway.aclose()

    app.router.lifespan_context = lifespan
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn app.main:app` (the Dockerfile) builds the app on first access, not at import time.
    if name == "app":
        return create_app()
    raise AttributeError(name)
