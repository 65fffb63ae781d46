"""Loading invoices with what they show, and turning them into API bodies and printable views."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from ..db.models import Customer, Invoice
from ..links import InvoiceLinks
from ..rendering import CreditNoteView, InvoiceLineView, InvoiceView
from .schemas import CreditNoteOut, InvoiceOut, LineOut, Period


CREDIT_REASONS = {
    "cancellation": "Subscription canceled: unused time",
    "plan_change": "Plan changed: unused time",
}


def invoices_with_details() -> Select:
    return select(Invoice).options(selectinload(Invoice.lines), selectinload(Invoice.credit_notes))


async def load_invoice(session: AsyncSession, invoice_id: uuid.UUID) -> Invoice | None:
    return (await session.scalars(invoices_with_details().where(Invoice.id == invoice_id))).first()


def invoice_out(invoice: Invoice, links: InvoiceLinks) -> InvoiceOut:
    html_url, pdf_url = links.urls(invoice.id)
    period = None
    if invoice.period_start is not None and invoice.period_end is not None:
        period = Period(start=invoice.period_start, end=invoice.period_end)
    return InvoiceOut.model_validate(
        {
            **{column: getattr(invoice, column) for column in InvoiceOut.model_fields if hasattr(Invoice, column)},
            "period": period,
            "lines": [LineOut.model_validate(line) for line in invoice.lines],
            "credit_notes": [CreditNoteOut.model_validate(note) for note in invoice.credit_notes],
            "html_url": html_url,
            "pdf_url": pdf_url,
        }
    )


async def invoice_view(session: AsyncSession, invoice: Invoice, locale: str) -> InvoiceView:
    """The printable view; the bill-to is the finalization snapshot, else the current projection."""
    name, email = invoice.customer_name, invoice.customer_email
    if not name and not email:
        customer = await session.get(Customer, invoice.customer_id)
        if customer is not None:
            name, email = customer.name, customer.email
    return InvoiceView(
        id=str(invoice.id),
        number=invoice.number,
        status=invoice.status,
        currency=invoice.currency,
        customer_name=name,
        customer_email=email,
        issued_at=invoice.finalized_at,
        due_at=invoice.due_at,
        paid_at=invoice.paid_at,
        lines=[
            InvoiceLineView(
                description=line.description,
                amount=line.amount * line.quantity,
                period_start=line.period_start,
                period_end=line.period_end,
                quantity=line.quantity,
            )
            for line in invoice.lines
        ],
        subtotal=invoice.subtotal,
        total=invoice.total,
        amount_paid=invoice.amount_paid,
        amount_credited=invoice.amount_credited,
        amount_refunded=invoice.amount_refunded,
        amount_due=invoice.amount_due,
        credit_notes=[CreditNoteView(note.number, note.amount, CREDIT_REASONS.get(note.reason, note.reason)) for note in invoice.credit_notes],
        locale=locale,
    )
