"""invoice.overpaid → refund what the invoice did not owe of that payment, once."""

from __future__ import annotations

from billing_shared.contracts import InvoiceOverpaid
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..context import PaymentContext
from ..domain.payments import overpayment_refund_key
from ..service_layer.owed_refunds import OwedRefund, refund_owed


async def handle_invoice_overpaid(envelope: Envelope, uow: UnitOfWork, *, ctx: PaymentContext) -> None:
    event = envelope.payload_as(InvoiceOverpaid)
    owed = OwedRefund(event.payment_id, event.amount, overpayment_refund_key(event.payment_id))
    await refund_owed(
        ctx, uow, [owed], customer_id=event.customer_id, reason="overpayment", occurred_at=envelope.occurred_at
    )
