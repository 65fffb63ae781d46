"""credit_note.issued with a refund due → refund the credited payment, once per credit note.

Same shape as charging from an event (see service_layer/collect.py): the refund row and its reservation on
the payment are claimed in their own short transaction under a key derived from the credit note, the gateway
is asked, and the outcome and payment.refunded are written in the handler's unit of work.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from billing_shared import clock
from billing_shared.consumer import Retryable
from billing_shared.contracts import CreditNoteIssued
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..context import PaymentContext
from ..db.models import Payment, Refund
from ..domain.payments import OPEN, credit_note_refund_key, refundable
from ..service_layer.refunds import apply_refund_result, refund_at_gateway, reserve_refund

log = logging.getLogger(__name__)


async def handle_credit_note_issued(envelope: Envelope, uow: UnitOfWork, *, ctx: PaymentContext) -> None:
    note = envelope.payload_as(CreditNoteIssued)
    if not note.refund_due or note.refund_amount <= 0 or note.payment_id is None:
        return
    context = {"credit_note_id": str(note.credit_note_id), "payment_id": str(note.payment_id)}
    async with ctx.db.uow() as claim:
        # Locking the payment first makes a second replica wait here, then find the first one's refund.
        payment = await claim.session.get(Payment, note.payment_id, with_for_update=True)
        if payment is None or payment.customer_id != note.customer_id:
            log.error("credit note refers to no payment of its customer; nothing refunded", extra=context)
            return
        if await claim.session.scalar(
            select(Refund.id).where(Refund.gateway_idempotency_key == credit_note_refund_key(note.credit_note_id))
        ):
            return  # refunded (or being refunded) by an earlier delivery; open ones are the reconciler's
        if payment.status in OPEN:
            raise Retryable(f"payment {payment.id} is still {payment.status}; refund once it is settled")
        left = refundable(payment.amount, payment.refunded_amount) if payment.status == "succeeded" else 0
        amount = min(note.refund_amount, left)
        if amount <= 0:
            log.warning("credit note asks for a refund but nothing is left to refund", extra=context)
            return
        if amount < note.refund_amount:
            log.warning("credit note refund capped at what is left of the payment", extra={**context, "amount": amount})
        refund = reserve_refund(
            payment, amount, now=clock.now(payment.customer_id),
            pending_grace_s=ctx.settings.payment_pending_reconcile_after_s, credit_note_id=note.credit_note_id,
        )
        claim.session.add(refund)
        await claim.commit()

    result = await refund_at_gateway(ctx.gateway, payment, refund)

    locked_payment = await uow.session.get(Payment, payment.id, with_for_update=True)
    locked_refund = await uow.session.get(Refund, refund.id, with_for_update=True)
    assert locked_payment is not None and locked_refund is not None
    event = apply_refund_result(
        locked_payment, locked_refund, result, now=clock.now(payment.customer_id),
        schedule=ctx.settings.payment_reconcile_after_s,
    )
    if event is not None:
        uow.emit(event, occurred_at=envelope.occurred_at)
