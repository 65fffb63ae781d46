"""invoice.voided → nothing is owed on the invoice any more: a payment by hand or a dunning retry of it charges
nothing (see service_layer.charges.KnownInvoice)."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert

from billing_shared.contracts import InvoiceVoided
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..db.models import VoidedInvoice


async def handle_invoice_voided(envelope: Envelope, uow: UnitOfWork) -> None:
    voided = envelope.payload_as(InvoiceVoided)
    await uow.session.execute(
        insert(VoidedInvoice)
        .values(invoice_id=voided.invoice_id, voided_at=envelope.occurred_at)
        .on_conflict_do_nothing(index_elements=[VoidedInvoice.invoice_id])
    )
