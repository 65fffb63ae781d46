"""For people: the printable HTML invoice and its PDF, opened with a Bearer token or a signed link (?sig=)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from billing_shared.errors import not_found

from ..rendering import InvoiceView, render_invoice_html
from .deps import DatabaseDep, PageAccessDep
from .views import invoice_view, load_invoice

router = APIRouter(tags=["pages"])

# Pages carry customer data: never cached by shared caches, never framed by other sites.
_HEADERS = {
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
}


async def _view(invoice_id: uuid.UUID, request: Request, access: PageAccessDep, db: DatabaseDep) -> InvoiceView:
    async with db.reads() as session:
        invoice = await load_invoice(session, invoice_id)
        if invoice is None:
            raise not_found("invoice")
        access.check(invoice.id, invoice.customer_id)
        return await invoice_view(session, invoice, request.app.state.settings.invoice_locale)


# Mounted before the JSON router: "/api/invoices/{id}" would otherwise match "<id>.pdf".
@router.get("/api/invoices/{invoice_id}.pdf", response_class=Response, summary="The invoice as a PDF")
async def read_invoice_pdf(invoice_id: uuid.UUID, request: Request, access: PageAccessDep, db: DatabaseDep) -> Response:
    view = await _view(invoice_id, request, access, db)
    # WeasyPrint is synchronous and CPU-bound: off the event loop, a few at a time, and each version once.
    pdf = await request.app.state.pdfs.pdf(view)
    filename = f"{view.number or 'draft-' + view.id}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={**_HEADERS, "Content-Disposition": f'inline; filename="{filename}"'},
    )


@router.get("/invoices/{invoice_id}", response_class=HTMLResponse, summary="The printable invoice page")
async def read_invoice_page(
    invoice_id: uuid.UUID, request: Request, access: PageAccessDep, db: DatabaseDep
) -> HTMLResponse:
    view = await _view(invoice_id, request, access, db)
    return HTMLResponse(render_invoice_html(view), headers=_HEADERS)
