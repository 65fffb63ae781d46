"""A payment consumed after an immediate cancel in its period still earns the cancel's credit (a correction)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from billing_shared.contracts import InvoicePaid
from billing_shared.testing import EventBus, wait_for

from tests.integration.helpers import create_plan, events_for, handled_since, handled_so_far, period_rows, subscribe
from tests.integration.test_cancel import pay_period

PAID_AT = datetime(2024, 4, 1, 0, 5, tzinfo=UTC)


def invoice_paid(sub: dict, amount: int) -> InvoicePaid:
    return InvoicePaid(
        invoice_id=uuid.uuid4(),
        customer_id=uuid.UUID(sub["customer_id"]),
        subscription_id=uuid.UUID(sub["id"]),
        currency="USD",
        total=amount,
        amount_paid=amount,
        paid_at=PAID_AT,
        period_start=datetime.fromisoformat(sub["current_period_start"]),
    )


async def paid_in_total(db, sub: dict, amount: int) -> bool:
    (row,) = await period_rows(db, sub["id"])
    return row.amount_paid == amount


async def cancel_on_day_11(client, test_clock, sub: dict, headers) -> dict:
    test_clock.set(2024, 4, 11, 15)  # 10 whole days used, 20 of 30 unused
    response = await client.post(f"/api/subscriptions/{sub['id']}/cancel", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_payment_consumed_after_the_cancel_is_credited_once_by_a_correction(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers, name="Pro", amount=3000)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.canceled")
        canceled = await cancel_on_day_11(client, test_clock, sub, user_headers)
        assert canceled["credit_amount"] == 0  # the invoice.paid is not consumed yet: the period looks unpaid

        paid = await bus.publish(invoice_paid(sub, 3000), occurred_at=datetime(2024, 4, 11, 15, 1, tzinfo=UTC))
        first, correction = await events_for(bus, "subscription.canceled", sub["id"], count=2)

        # Redelivered, and paid a second time (a duplicate charge): the unused days are credited already.
        seen = handled_so_far("invoice.paid", "duplicate")
        await bus.publish(paid)
        await bus.publish(invoice_paid(sub, 3000), occurred_at=datetime(2024, 4, 12, tzinfo=UTC))
        await wait_for(
            lambda: handled_since(seen, "invoice.paid", "duplicate"),
            message="the redelivered invoice.paid to be skipped",
        )
        await wait_for(lambda: paid_in_total(db, sub, 6000), message="the second payment to be recorded")
    assert first.payload["correction"] is False and first.payload["credit_amount"] == 0
    assert correction.payload["correction"] is True and correction.payload["at_period_end"] is False
    assert correction.payload["credit_amount"] == 2000 and correction.payload["currency"] == "USD"
    assert correction.payload["canceled_at"] == first.payload["canceled_at"]
    assert (correction.payload["period_start"], correction.payload["period_end"]) == (
        "2024-04-01T00:00:00Z", "2024-05-01T00:00:00Z",
    )
    (line,) = correction.payload["lines"]
    assert (line["amount"], line["unused_days"], line["days_in_period"]) == (-2000, 20, 30)
    assert line["description"] == "Unused time: 20 of 30 days of Pro"
    assert len([e for e in bus.of_type("subscription.canceled") if e.payload["subscription_id"] == sub["id"]]) == 2
    (row,) = await period_rows(db, sub["id"])
    assert (row.amount_paid, row.amount_credited) == (6000, 2000)


async def test_a_partial_payment_credited_at_cancel_is_topped_up_by_the_rest(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers, amount=3000)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.canceled")
        await pay_period(bus, db, sub, 1000, PAID_AT)
        canceled = await cancel_on_day_11(client, test_clock, sub, user_headers)
        assert canceled["credit_amount"] == 1000  # never more than was paid
        await bus.publish(invoice_paid(sub, 2000), occurred_at=datetime(2024, 4, 11, 16, tzinfo=UTC))
        _, correction = await events_for(bus, "subscription.canceled", sub["id"], count=2)
    assert correction.payload["correction"] is True and correction.payload["credit_amount"] == 1000
    (row,) = await period_rows(db, sub["id"])
    assert (row.amount_paid, row.amount_credited) == (3000, 2000)


async def test_a_late_payment_after_a_cancel_at_period_end_credits_nothing(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers, amount=3000)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    test_clock.set(2024, 4, 11)
    response = await client.post(f"/api/subscriptions/{sub['id']}/cancel", json={"at_period_end": True}, headers=user_headers)
    assert response.status_code == 200, response.text
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.canceled")
        await pay_period(bus, db, sub, 3000, PAID_AT)
    assert bus.of_type("subscription.canceled") == []
    (row,) = await period_rows(db, sub["id"])
    assert row.amount_credited == 0
