"""invoice.paid: the period it billed is paid; a past-due or suspended subscription is active again. So is it
after invoice.voided: the unpaid invoice is owed no more."""

from __future__ import annotations

from billing_shared.contracts import InvoicePaid, InvoiceVoided
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..service.collection import forgive, record_payment


async def handle_invoice_paid(envelope: Envelope, uow: UnitOfWork) -> None:
    paid = envelope.payload_as(InvoicePaid)
    if paid.subscription_id is None:  # a one-off invoice
        return
    await record_payment(
        uow,
        paid.subscription_id,
        invoice_id=paid.invoice_id,
        amount_paid=paid.amount_paid,
        paid_at=paid.paid_at,
        period_start=paid.period_start,
        at=envelope.occurred_at,
    )


async def handle_invoice_voided(envelope: Envelope, uow: UnitOfWork) -> None:
    voided = envelope.payload_as(InvoiceVoided)
    if voided.subscription_id is not None:
        await forgive(uow, voided.subscription_id, voided.invoice_id, envelope.occurred_at)
