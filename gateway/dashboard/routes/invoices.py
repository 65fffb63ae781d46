"""An invoice's page, and its printable HTML and PDF fetched with the admin's token."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..rendering import render, safe_url
from ..security import PREFIX, Admin, state_of
from ..upstream import UpstreamError, UpstreamUnauthorized, settle

router = APIRouter(prefix=PREFIX, tags=["invoices"])

# The service's printable page may carry its own inline CSS; it must never run script or be framed.
DOCUMENT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; sandbox; frame-ancestors 'none'"
)


def document_links(invoice: dict, invoice_id: str) -> tuple[str, str]:
    """Signed links from the invoice service when it gives them, else this dashboard's own proxies."""
    html = safe_url(invoice.get("html_url")) or f"{PREFIX}/invoices/{invoice_id}/document"
    pdf = safe_url(invoice.get("pdf_url")) or f"{PREFIX}/invoices/{invoice_id}/pdf"
    return html, pdf


@router.get("/invoices/{invoice_id}", summary="An invoice, its lines and links to its documents")
async def read_invoice(request: Request, admin: Admin, invoice_id: uuid.UUID) -> Response:
    state = state_of(request)
    (invoice, error), (payments, payments_error) = await asyncio.gather(
        settle(state.api.get(f"/api/invoices/{invoice_id}", admin.token)),
        settle(state.api.get_page("/api/payments", admin.token, invoice_id=str(invoice_id),
                                  limit=state.settings.dashboard_page_size)),
    )
    invoice = invoice if isinstance(invoice, dict) else None
    html_url, pdf_url = document_links(invoice or {}, str(invoice_id))
    context = {
        "admin": admin, "csrf": admin.csrf, "active": "invoices", "invoice_id": str(invoice_id),
        "invoice": invoice, "error": error, "html_url": html_url, "pdf_url": pdf_url,
        "payments": payments, "payments_error": payments_error,
    }
    return render(request, "invoice.html", context, status_code=404 if error and error.status == 404 else 200)


@router.get("/invoices/{invoice_id}/document", summary="The invoice's printable HTML page")
async def read_invoice_document(request: Request, admin: Admin, invoice_id: uuid.UUID) -> Response:
    try:
        upstream = await state_of(request).api.fetch_raw(f"/invoices/{invoice_id}", admin.token)
    except UpstreamUnauthorized:
        raise
    except UpstreamError as exc:
        return _unavailable(request, admin, exc)
    if not upstream.headers.get("content-type", "").startswith("text/html"):
        return _unavailable(request, admin, UpstreamError(f"/invoices/{invoice_id}", None, "not an HTML page"))
    return Response(
        upstream.content,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": DOCUMENT_CSP, "Cache-Control": "no-store"},
    )


@router.get("/invoices/{invoice_id}/pdf", summary="The invoice as a PDF")
async def read_invoice_pdf(request: Request, admin: Admin, invoice_id: uuid.UUID) -> Response:
    try:
        upstream = await state_of(request).api.fetch_raw(f"/api/invoices/{invoice_id}.pdf", admin.token)
    except UpstreamUnauthorized:
        raise
    except UpstreamError as exc:
        return _unavailable(request, admin, exc)
    if not upstream.content.startswith(b"%PDF"):
        return _unavailable(request, admin, UpstreamError(f"/api/invoices/{invoice_id}.pdf", None, "not a PDF"))
    return Response(
        upstream.content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="invoice-{invoice_id}.pdf"', "Cache-Control": "no-store"},
    )


def _unavailable(request: Request, admin: Admin, error: UpstreamError) -> Response:
    status = 404 if error.status == 404 else 502
    context = {"admin": admin, "csrf": admin.csrf, "active": "invoices", "error": error, "title": "Invoice document"}
    return render(request, "unavailable.html", context, status_code=status)
