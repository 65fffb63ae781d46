"""Builds the notifier service app (uvicorn --factory app.main:create_app)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from billing_shared.web import create_service_app

from .api import notifications
from .delivery import EmailDelivery
from .handlers import build_handlers
from .invoice_pdf import InvoicePdfClient
from .settings import Settings
from .smtp import SmtpSender


def build_delivery(settings: Settings) -> EmailDelivery:
    sender = SmtpSender(
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_username or None,
        settings.smtp_password or None,
        use_tls=settings.smtp_use_tls,
        start_tls=settings.smtp_start_tls,
        timeout=settings.smtp_timeout_s,
        attempts=settings.smtp_attempts,
        backoff_initial=settings.smtp_backoff_initial_s,
        backoff_max=settings.smtp_backoff_max_s,
        pool_size=settings.prefetch,  # at most one send per in-flight email
    )
    invoice_pdfs = None
    if settings.notifier_invoice_api_url:
        invoice_pdfs = InvoicePdfClient(
            settings.notifier_invoice_api_url,
            settings.notifier_api_key or None,
            timeout_s=settings.notifier_invoice_api_timeout_s,
            max_connections=settings.prefetch,  # at most one fetch per in-flight email
        )
    return EmailDelivery(settings, sender, invoice_pdfs)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    delivery = build_delivery(settings)
    app = create_service_app(
        settings,
        title="Notifier service",
        description="Every customer email, from events, over SMTP, exactly once per event; and the log of them.",
        routers=[notifications.router],
        handlers=build_handlers(delivery),
        resources=lambda: _held_for_lifetime(delivery.sender, delivery.invoice_pdfs),
    )
    app.state.delivery = delivery
    return app


@asynccontextmanager
async def _held_for_lifetime(sender: SmtpSender, invoice_pdfs: InvoicePdfClient | None) -> AsyncIterator[None]:
    """Open the pooled PDF client before the consumer starts; close it and the SMTP connections after it stopped."""
    if invoice_pdfs is not None:
        invoice_pdfs.start()
    try:
        yield
    finally:
        if invoice_pdfs is not None:
            await invoice_pdfs.aclose()
        await sender.aclose()
