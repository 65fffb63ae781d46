"""Builds the invoice service app (uvicorn --factory app.main:create_app; `app.main:app` works too)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from billing_shared.web import create_service_app

from .api import credit_notes, invoices, pages
from .handlers import BINDINGS, make_handlers
from .invoicing import Terms
from .pdfs import PdfRenderer
from .settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    terms = Terms.from_settings(settings)
    pdfs = PdfRenderer(settings.invoice_pdf_concurrency, settings.invoice_pdf_cache_size)

    @asynccontextmanager
    async def renderer() -> AsyncIterator[None]:
        try:
            yield
        finally:
            pdfs.close()

    app = create_service_app(
        settings,
        title="Invoice service",
        description="Invoices from subscription events, gapless numbering, credit notes, HTML and PDF invoices.",
        # pages first: its /api/invoices/{id}.pdf must be tried before /api/invoices/{id}.
        routers=[pages.router, invoices.router, credit_notes.router],
        handlers=make_handlers(terms),
        bindings=BINDINGS,
        resources=renderer,
    )
    app.state.terms = terms
    app.state.pdfs = pdfs
    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    # `uvicorn app.main:app` (the image's command) builds the app on first access, not at import.
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
