"""invoice.finalized → charge the amount due to the invoice's (or the customer's default) payment method.

Not an invoice voided since: its invoice.voided can be handled first (invoice.finalized waiting out a database
outage at the delay queues, say), and a charge then would only be refunded as an overpayment."""

from __future__ import annotations

import logging

from billing_shared.contracts import InvoiceFinalized
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..context import PaymentContext
from ..domain.payments import invoice_charge_key
from ..service_layer.charges import ChargeTarget, invoice_voided
from ..service_layer.collect import collect

log = logging.getLogger(__name__)


async def handle_invoice_finalized(envelope: Envelope, uow: UnitOfWork, *, ctx: PaymentContext) -> None:
    invoice = envelope.payload_as(InvoiceFinalized)
    if invoice.amount_due <= 0:
        return  # nothing to collect (fully discounted, credited, or a free trial)
    if await invoice_voided(uow.session, invoice.invoice_id):
        log.info("invoice voided before its charge: nothing charged", extra={"invoice_id": str(invoice.invoice_id)})
        return
    target = ChargeTarget(
        customer_id=invoice.customer_id,
        amount=invoice.amount_due,
        currency=invoice.currency.upper(),
        source="invoice",
        attempt=1,
        gateway_key=invoice_charge_key(invoice.invoice_id, 1),
        invoice_id=invoice.invoice_id,
        subscription_id=invoice.subscription_id,
        description=f"invoice {invoice.number}" if invoice.number else None,
    )
    await collect(ctx, uow, target, preferred_method=invoice.payment_method_id, at=envelope.occurred_at)
