"""Charging from an event (invoice.finalized, dunning.retry_due) so that no delivery ever charges twice.

Why three steps: the consumer runs a handler inside one transaction that also records the event in the
inbox and commits only when the handler returns. If the pending payment row lived only in that transaction,
two replicas handling two deliveries (or two different events about the same invoice) could both reach the
gateway before either committed. So:

(a) the payment row is claimed in its own short transaction (`ctx.db.uow()`), keyed by a gateway idempotency
    key derived from (invoice or original payment, attempt) and backed by unique constraints: whoever inserts
    it owns the charge; everyone else finds it there and does nothing (a settled one was announced by its
    settler, an open one is left to the reconciler);
(b) the owner calls the gateway with that key (even a retried call cannot charge twice);
(c) the outcome and its event are written in the handler's unit of work, committed with the inbox row.

If (c) never commits (crash, lost broker connection) the payment stays pending; the redelivered event finds
the claimed row and does nothing, and the reconciler settles it by asking the gateway, emitting the event
then. The inbox transaction does stay open across the gateway call (bounded by the gateway timeout); it holds
nothing but the inbox row. While (a) runs a handler holds two pool connections, so settings refuse a prefetch
with 2 x prefetch above the pool's size (otherwise every connection could be an inbox transaction waiting
for a second one). Needing only one would take a consumer hook run before the inbox transaction opens.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from billing_shared import clock
from billing_shared.db import UnitOfWork
from billing_shared.ids import new_id

from ..context import PaymentContext
from ..db.models import Payment
from .charges import (
    NO_PAYMENT_METHOD,
    ChargeTarget,
    apply_charge_result,
    apply_charge_result_if_unmoved,
    as_announced,
    charge_at_gateway,
    fail_payment,
    insert_payment_once,
    method_for_charge,
    new_payment,
)

log = logging.getLogger(__name__)


async def collect(
    ctx: PaymentContext, uow: UnitOfWork, target: ChargeTarget, *, preferred_method: uuid.UUID | None, at: datetime
) -> Payment | None:
    """Charge `target` once; the payment this call created, or None if it already existed."""
    settings = ctx.settings
    method = await method_for_charge(uow.session, target.customer_id, preferred_method)
    payment = new_payment(
        target, method, at=at, now=clock.now(target.customer_id),
        pending_grace_s=settings.payment_pending_reconcile_after_s, payment_id=new_id(),
    )
    if method is None:
        # Nothing to send to the gateway: the failed payment and its event go in the handler's transaction.
        if not await insert_payment_once(uow.session, payment):
            _already(target)
            return None
        created = await uow.session.get(Payment, payment.id, with_for_update=True)
        assert created is not None
        event = fail_payment(
            created, NO_PAYMENT_METHOD, "hard", "the customer has no usable payment method", at=at
        )
        uow.emit(await as_announced(uow.session, event), occurred_at=at)
        return created

    async with ctx.db.uow() as claim:  # (a)
        inserted = await insert_payment_once(claim.session, payment)
        await claim.commit()
    if not inserted:
        _already(target)
        return None

    result = await charge_at_gateway(ctx.gateway, payment, method.gateway_token)  # (b)

    # (c): one conditional UPDATE while nobody has moved the payment; else (the reconciler got there first)
    # lock it, read it again and apply the answer to that.
    now = clock.now(target.customer_id)
    schedule = settings.payment_reconcile_after_s
    written, event = await apply_charge_result_if_unmoved(
        uow.session, payment, result, at=at, now=now, schedule=schedule
    )
    settled = payment
    if not written:
        locked = await uow.session.get(Payment, payment.id, with_for_update=True)
        assert locked is not None
        settled, event = locked, apply_charge_result(locked, result, at=at, now=now, schedule=schedule)
    if event is not None:
        uow.emit(await as_announced(uow.session, event), occurred_at=at)
    return settled


def _already(target: ChargeTarget) -> None:
    log.info(
        "charge already made or under way; nothing to do",
        extra={"gateway_key": target.gateway_key, "invoice_id": str(target.invoice_id), "attempt": target.attempt},
    )
