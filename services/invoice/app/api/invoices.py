"""Invoices: read, list, stats, void (the HTML page and the PDF are in pages.py)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from billing_shared import clock
from billing_shared.auth import AdminPrincipal, CurrentPrincipal
from billing_shared.errors import ApiError, not_found
from billing_shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, fetch_page

from ..db.models import Invoice
from ..domain.states import InvalidTransition, InvoiceStatus, NotVoidable
from ..invoicing import lock_invoice, mark_void
from .deps import DatabaseDep, LinksDep, check_visible
from .schemas import InvoiceOut, InvoicePage, InvoiceStats, Outstanding
from .views import invoice_out, invoices_with_details, load_invoice

router = APIRouter(prefix="/api/invoices", tags=["invoices"])

# Declared before /{invoice_id}, which would otherwise take "stats" for an id.
@router.get("/stats", response_model=InvoiceStats, summary="Invoice counts, overdue and outstanding amounts (admin)")
async def read_invoice_stats(admin: AdminPrincipal, db: DatabaseDep) -> InvoiceStats:
    now = clock.now()
    async with db.reads() as session:
        counted = dict((await session.execute(select(Invoice.status, func.count()).group_by(Invoice.status))).all())
        overdue = await session.scalar(
            select(func.count()).where(Invoice.status == InvoiceStatus.OPEN.value, Invoice.due_at < now)
        )
        outstanding = (
            await session.execute(
                select(Invoice.currency, func.sum(Invoice.amount_due))
                .where(Invoice.status == InvoiceStatus.OPEN.value)
                .group_by(Invoice.currency)
                .order_by(Invoice.currency)
            )
        ).all()
    return InvoiceStats(
        counts={status.value: int(counted.get(status.value, 0)) for status in InvoiceStatus},
        overdue=int(overdue or 0),
        outstanding=[Outstanding(currency=currency, amount=int(amount)) for currency, amount in outstanding],
    )


@router.get("", response_model=InvoicePage, summary="List invoices (a user sees only their own)")
async def list_invoices(
    principal: CurrentPrincipal,
    db: DatabaseDep,
    links: LinksDep,
    customer_id: uuid.UUID | None = None,
    status: InvoiceStatus | None = None,
    subscription_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> InvoicePage:
    customer_id = principal.customer_to_list(customer_id)
    stmt = invoices_with_details()
    if customer_id is not None:
        stmt = stmt.where(Invoice.customer_id == customer_id)
    if status is not None:
        stmt = stmt.where(Invoice.status == status.value)
    if subscription_id is not None:
        stmt = stmt.where(Invoice.subscription_id == subscription_id)
    async with db.reads() as session:
        rows, next_cursor = await fetch_page(session, stmt, Invoice.id, cursor, limit)
    return InvoicePage(
        data=[invoice_out(row, links) for row in rows], has_more=next_cursor is not None, next_cursor=next_cursor
    )


@router.get("/{invoice_id}", response_model=InvoiceOut, summary="Read an invoice (its customer, or admin)")
async def read_invoice(invoice_id: uuid.UUID, principal: CurrentPrincipal, db: DatabaseDep, links: LinksDep) -> InvoiceOut:
    async with db.reads() as session:
        invoice = await load_invoice(session, invoice_id)
    if invoice is None:
        raise not_found("invoice")
    check_visible(principal, invoice.customer_id)
    return invoice_out(invoice, links)


@router.post(
    "/{invoice_id}/void",
    response_model=InvoiceOut,
    summary="Void an invoice (admin); refused once a payment succeeded (issue a credit note instead)",
)
async def void_invoice(invoice_id: uuid.UUID, admin: AdminPrincipal, db: DatabaseDep, links: LinksDep) -> InvoiceOut:
    async with db.uow() as uow:
        invoice = await lock_invoice(uow.session, invoice_id)
        if invoice is None:
            raise not_found("invoice")
        try:
            mark_void(uow, invoice, clock.now(invoice.customer_id))
        except NotVoidable as exc:
            raise ApiError(409, "invoice_not_voidable", str(exc)) from None
        except InvalidTransition as exc:
            raise ApiError(409, "invalid_transition", str(exc)) from None
        await uow.commit()
    async with db.reads() as session:
        invoice = await load_invoice(session, invoice_id)
    assert invoice is not None
    return invoice_out(invoice, links)
