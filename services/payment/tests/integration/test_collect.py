"""Collecting from an event when the reconciler settles the payment while the gateway call is under way."""

from __future__ import annotations

import uuid
from dataclasses import replace

from sqlalchemy import select, update

from app.adapters.gateway import ChargeResult
from app.db.models import Payment
from app.domain.payments import invoice_charge_key
from app.service_layer.charges import ChargeTarget
from app.service_layer.collect import collect
from billing_shared import clock
from billing_shared.plumbing_tables import outbox_table


class GatewayRacedByTheReconciler:
    """Answers "succeeded", but only after settling the pending payment itself, as the reconciler would."""

    def __init__(self, db) -> None:
        self.db = db

    async def charge(self, token, amount, currency, idempotency_key, description=None) -> ChargeResult:
        async with self.db.sessions() as session, session.begin():
            await session.execute(
                update(Payment)
                .where(Payment.gateway_idempotency_key == idempotency_key)
                .values(status="succeeded", gateway_charge_id="ch_by_reconciler", settled_at=clock.now(),
                        next_reconcile_at=None)
            )
        return ChargeResult("succeeded", gateway_charge_id="ch_by_reconciler", amount=amount, currency=currency)


async def test_a_payment_the_reconciler_settled_during_the_call_is_left_as_it_settled_it(
    payment_app, customer, add_card, db
):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    invoice_id = uuid.uuid4()
    target = ChargeTarget(customer_id=customer_id, amount=2500, currency="USD", source="invoice", attempt=1,
                          gateway_key=invoice_charge_key(invoice_id, 1), invoice_id=invoice_id)
    ctx = replace(payment_app.state.payment)
    ctx.bind_gateway(GatewayRacedByTheReconciler(db))

    async with db.uow() as uow:
        payment = await collect(ctx, uow, target, preferred_method=None, at=clock.now())
        await uow.commit()

    assert payment is not None and payment.status == "succeeded"
    async with db.sessions() as session:
        stored = await session.scalar(select(Payment).where(Payment.invoice_id == invoice_id))
        outbox = outbox_table("payment")
        announced = (await session.execute(
            select(outbox.c.id).where(outbox.c.body["payload"]["invoice_id"].astext == str(invoice_id))
        )).all()
    assert (stored.status, stored.gateway_charge_id) == ("succeeded", "ch_by_reconciler")
    assert announced == []  # whoever settled it announces it; this call must not announce it a second time
