"""dunning.retry_due → charge again what failed (an invoice, or a one-off payment) as attempt N."""

from __future__ import annotations

import logging

from sqlalchemy import select

from billing_shared.contracts import DunningRetryDue
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..context import PaymentContext
from ..db.models import Payment
from ..domain.payments import invoice_charge_key, payment_charge_key
from ..service_layer.charges import ChargeTarget, known_invoice
from ..service_layer.collect import collect

log = logging.getLogger(__name__)


async def handle_dunning_retry_due(envelope: Envelope, uow: UnitOfWork, *, ctx: PaymentContext) -> None:
    retry = envelope.payload_as(DunningRetryDue)
    session = uow.session
    if retry.invoice_id is not None:
        invoice = await known_invoice(session, retry.invoice_id)
        if invoice is not None and (invoice.paid or invoice.voided):
            # Paid by hand (or voided) meanwhile: that invoice.paid (invoice.voided) ends the case; a charge now
            # would be refunded.
            log.info("dunning retry of an invoice already paid or void; nothing charged",
                     extra={"case_id": str(retry.case_id)})
            return
        # The retry asks for what dunning knows is still due (a credit note may have lowered it), never more
        # than the invoice's first system charge asked.
        first = await session.scalar(
            select(Payment)
            .where(Payment.invoice_id == retry.invoice_id, Payment.source != "api")
            .order_by(Payment.attempt, Payment.id)
            .limit(1)
        )
        key = invoice_charge_key(retry.invoice_id, retry.attempt)
        original_id = first.id if first else None
    elif retry.payment_id is not None:
        failed = await session.get(Payment, retry.payment_id)
        if failed is None:
            log.error("dunning retry for an unknown payment; nothing charged", extra={"payment_id": str(retry.payment_id)})
            return
        original_id = failed.original_payment_id or failed.id
        first = await session.get(Payment, original_id)
        key = payment_charge_key(original_id, retry.attempt)
    else:
        log.error("dunning retry names neither an invoice nor a payment; nothing charged", extra={"case_id": str(retry.case_id)})
        return
    if first is not None and first.customer_id != retry.customer_id:
        log.error("dunning retry's customer does not own the payment; nothing charged", extra={"case_id": str(retry.case_id)})
        return
    target = ChargeTarget(
        customer_id=retry.customer_id,
        amount=min(first.amount, retry.amount) if first else retry.amount,
        currency=first.currency if first else retry.currency.upper(),
        source="dunning",
        attempt=retry.attempt,
        gateway_key=key,
        invoice_id=retry.invoice_id,
        subscription_id=retry.subscription_id or (first.subscription_id if first else None),
        dunning_case_id=retry.case_id,
        original_payment_id=original_id,
        description=first.description if first else None,
    )
    await collect(ctx, uow, target, preferred_method=retry.payment_method_id, at=envelope.occurred_at)
