"""Refunds the invoice service says a customer is owed: a credit note's (from each payment it names) and the
part of a payment an invoice did not owe. Each is made once, by a gateway key derived from the fact.

Same shape as charging from an event (see collect.py): every refund is claimed, with its reservation on its
payment, in one short transaction of its own; the gateway is asked; the outcomes and payment.refunded are
written in the handler's unit of work. A crash between the two leaves pending refunds for the reconciler.

An owed refund is capped at what is left of its payment. What an unsettled refund of that payment holds
reserved may come back (if that refund fails), so while one is open and the cap would bite, the owed refund
waits for it (the event is tried again later) rather than being cut short for good.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select

from billing_shared import clock
from billing_shared.consumer import Outage
from billing_shared.db import UnitOfWork

from ..context import PaymentContext
from ..db.models import Payment, Refund
from ..domain.payments import OPEN, refundable
from .refunds import apply_refund_result, refund_at_gateway, reserve_refund

log = logging.getLogger(__name__)


class AwaitingGateway(Outage):
    """An owed refund depends on a charge or refund whose outcome the gateway has not given yet. The reconciler
    learns it within its schedule (a day at most by default), so the event waits as for an outage, not
    counting tries toward the dead-letter queue."""


@dataclass(frozen=True, slots=True)
class OwedRefund:
    payment_id: uuid.UUID
    amount: int
    key: str  # the gateway idempotency key: the same fact always computes the same one


async def refund_owed(
    ctx: PaymentContext,
    uow: UnitOfWork,
    owed: Sequence[OwedRefund],
    *,
    customer_id: uuid.UUID,
    reason: Literal["credit_note", "overpayment"],
    occurred_at: datetime,
    credit_note_id: uuid.UUID | None = None,
) -> None:
    owed = [refund for refund in owed if refund.amount > 0]
    if not owed:
        return
    now = clock.now(customer_id)
    claimed: list[tuple[Payment, Refund]] = []
    async with ctx.db.uow() as claim:
        # Locking the payments first makes a second replica wait here, then find the first one's refunds.
        payments = {
            payment.id: payment
            for payment in await claim.session.scalars(
                select(Payment)
                .where(Payment.id.in_({refund.payment_id for refund in owed}))
                .order_by(Payment.id)
                .with_for_update()
            )
        }
        made = set(
            await claim.session.scalars(
                select(Refund.gateway_idempotency_key).where(
                    Refund.gateway_idempotency_key.in_([refund.key for refund in owed])
                )
            )
        )
        reserved_open = {
            payment_id: amount
            for payment_id, amount in await claim.session.execute(
                select(Refund.payment_id, func.sum(Refund.amount))
                .where(Refund.payment_id.in_(payments), Refund.status.in_(OPEN))
                .group_by(Refund.payment_id)
            )
        }
        for asked in owed:
            if asked.key in made:
                continue  # refunded (or being refunded) by an earlier delivery; open ones are the reconciler's
            context = {"payment_id": str(asked.payment_id), "reason": reason, "credit_note_id": str(credit_note_id)}
            payment = payments.get(asked.payment_id)
            if payment is None or payment.customer_id != customer_id:
                log.error("a refund is owed from no payment of its customer; nothing refunded", extra=context)
                continue
            if payment.status in OPEN:
                raise AwaitingGateway(f"payment {payment.id} is still {payment.status}; refund once it is settled")
            left = refundable(payment.amount, payment.refunded_amount) if payment.status == "succeeded" else 0
            amount = min(asked.amount, left)
            if amount < asked.amount and reserved_open.get(payment.id, 0) > 0:
                raise AwaitingGateway(
                    f"payment {payment.id} has an unsettled refund holding what this one needs; refund once it is"
                    " settled"
                )
            if amount <= 0:
                log.warning("a refund is owed but nothing is left of the payment to refund", extra=context)
                continue
            if amount < asked.amount:
                log.warning("owed refund capped at what is left of the payment", extra={**context, "amount": amount})
            refund = reserve_refund(
                payment, amount, now=now, pending_grace_s=ctx.settings.payment_pending_reconcile_after_s,
                credit_note_id=credit_note_id, reason=reason, key=asked.key,
            )
            claim.session.add(refund)
            claimed.append((payment, refund))
        if not claimed:
            return
        await claim.commit()

    results = [await refund_at_gateway(ctx.gateway, payment, refund) for payment, refund in claimed]

    for (payment, refund), result in zip(claimed, results, strict=True):
        locked_payment = await uow.session.get(Payment, payment.id, with_for_update=True)
        locked_refund = await uow.session.get(Refund, refund.id, with_for_update=True)
        assert locked_payment is not None and locked_refund is not None
        event = apply_refund_result(
            locked_payment, locked_refund, result, now=clock.now(customer_id),
            schedule=ctx.settings.payment_reconcile_after_s,
        )
        if event is not None:
            uow.emit(event, occurred_at=occurred_at)
