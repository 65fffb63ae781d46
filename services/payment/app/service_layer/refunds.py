"""Refunding: reserve the amount on the locked payment row, ask the gateway, then settle or release it.

The reservation (payment.refunded_amount grows before the gateway is called, under SELECT … FOR UPDATE)
is what keeps concurrent refunds from taking more than was captured; a failed refund gives its amount back.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from billing_shared.contracts import PaymentRefunded
from billing_shared.ids import new_id

from ..adapters.gateway import PaymentGateway, RefundResult
from ..db.models import Payment, Refund
from ..domain.payments import OPEN, next_check_at, refund_key

log = logging.getLogger(__name__)


def reserve_refund(
    payment: Payment,
    amount: int,
    *,
    now: datetime,
    pending_grace_s: int,
    credit_note_id: uuid.UUID | None = None,
    reason: str = "requested",
    key: str | None = None,
) -> Refund:
    """A pending refund of `amount` (already checked against what is left), reserved on the locked payment.

    `key` is the gateway idempotency key of a refund owed by a fact (a credit note, an overpayment); one the
    API asks for has its own."""
    refund_id = new_id()
    payment.refunded_amount += amount
    payment.updated_at = now
    return Refund(
        id=refund_id,
        payment_id=payment.id,
        customer_id=payment.customer_id,
        amount=amount,
        currency=payment.currency,
        status="pending",
        credit_note_id=credit_note_id,
        reason=reason,
        gateway_idempotency_key=key or refund_key(refund_id),
        reconcile_checks=0,
        next_reconcile_at=now + timedelta(seconds=pending_grace_s),
        created_at=now,
        updated_at=now,
    )


async def refund_at_gateway(gateway: PaymentGateway, payment: Payment, refund: Refund) -> RefundResult:
    if not payment.gateway_charge_id:
        return RefundResult("failed", failure_code="no_charge", message="the payment has no gateway charge")
    return await gateway.refund(payment.gateway_charge_id, refund.amount, refund.gateway_idempotency_key)


def refund_event(payment: Payment, refund: Refund) -> PaymentRefunded:
    return PaymentRefunded(
        refund_id=refund.id,
        payment_id=payment.id,
        customer_id=payment.customer_id,
        amount=refund.amount,
        currency=refund.currency,
        invoice_id=payment.invoice_id,
        credit_note_id=refund.credit_note_id,
        reason=refund.reason,
    )


def apply_refund_result(
    payment: Payment, refund: Refund, result: RefundResult, *, now: datetime, schedule: list[int]
) -> PaymentRefunded | None:
    """Record the gateway's answer on an open refund (payment and refund locked); the event if it succeeded.

    Unknown keeps the reservation and schedules a retry under the same gateway key (refunds are idempotent
    there); failed gives the reserved amount back to the payment.
    """
    if refund.status not in OPEN:
        return None
    refund.updated_at = now
    if result.status == "unknown":
        if refund.status == "pending":
            refund.status = "unknown"
            refund.reconcile_checks = 0
            refund.next_reconcile_at = next_check_at(schedule, 0, now)
        return None
    refund.next_reconcile_at = None
    if result.status == "failed":
        refund.status = "failed"
        refund.failure_code = result.failure_code or "refund_failed"
        refund.failure_message = (result.message or "")[:500]
        payment.refunded_amount -= refund.amount
        payment.updated_at = now
        if refund.reason != "requested":
            # Nobody asked for this refund who would see it fail: a credit note or an overpaid invoice says the
            # customer is owed it.
            log.error(
                "the gateway refused a refund owed for a%s (%s): the customer is still owed it; refund by hand "
                "(GET /api/refunds?status=failed lists them)",
                " credit note" if refund.reason == "credit_note" else "n overpayment", refund.failure_code,
                extra={"refund_id": str(refund.id), "credit_note_id": str(refund.credit_note_id),
                       "payment_id": str(payment.id), "amount": refund.amount, "currency": refund.currency},
            )
        return None
    refund.status = "succeeded"
    refund.gateway_refund_id = result.gateway_refund_id
    return refund_event(payment, refund)
