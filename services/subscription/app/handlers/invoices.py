"""invoice.paid: the period it billed is paid; a past-due or suspended subscription is active again."""

from __future__ import annotations

from billing_shared.contracts import InvoicePaid
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..service.collection import record_payment


async def handle_invoice_paid(envelope: Envelope, uow: UnitOfWork) -> None:
    paid = envelope.payload_as(InvoicePaid)
    if paid.subscription_id is None:  # a one-off invoice
        return
    await record_payment(
        uow,
        paid.subscription_id,
        amount_paid=paid.amount_paid,
        paid_at=paid.paid_at,
        period_start=paid.period_start,
        at=envelope.occurred_at,
    )
