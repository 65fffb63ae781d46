"""Cancel: now with a prorated credit of the paid, unused days (never more than paid), or at period end."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from billing_shared.contracts import InvoicePaid
from billing_shared.testing import EventBus, wait_for

from tests.integration.helpers import bill, create_plan, events_for, period_rows, subscribe


async def pay_period(
    bus: EventBus, db, sub: dict, amount: int, paid_at: datetime, invoice_id: uuid.UUID | None = None
) -> None:
    """Publish invoice.paid for the subscription's current period and wait until the service recorded it."""
    before = sum(r.amount_paid for r in await period_rows(db, sub["id"]))
    await bus.publish(
        InvoicePaid(
            invoice_id=invoice_id or uuid.uuid4(),
            customer_id=uuid.UUID(sub["customer_id"]),
            subscription_id=uuid.UUID(sub["id"]),
            currency="USD",
            total=amount,
            amount_paid=amount,
            paid_at=paid_at,
            period_start=datetime.fromisoformat(sub["current_period_start"]),
        ),
        occurred_at=paid_at,
    )

    async def recorded():
        return sum(r.amount_paid for r in await period_rows(db, sub["id"])) >= before + amount

    await wait_for(recorded, message="the invoice payment to be recorded")


async def test_cancel_midway_credits_unused_days(client, admin_headers, service_env, db, test_clock, customer_id, user_headers):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers, name="Pro", amount=3000)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.canceled")
        await pay_period(bus, db, sub, 3000, datetime(2024, 4, 1, 0, 5, tzinfo=UTC))
        test_clock.set(2024, 4, 11, 15)  # 10 whole days used, 20 of 30 unused
        response = await client.post(f"/api/subscriptions/{sub['id']}/cancel", headers=user_headers)
        assert response.status_code == 200, response.text
        (event,) = await events_for(bus, "subscription.canceled", sub["id"])
    body = response.json()
    assert body["status"] == "canceled" and body["credit_amount"] == 2000
    assert body["lines"][0]["description"] == "Unused time: 20 of 30 days of Pro"
    assert event.payload["credit_amount"] == 2000 and event.payload["currency"] == "USD"
    assert event.payload["at_period_end"] is False
    assert (event.payload["period_start"], event.payload["period_end"]) == ("2024-04-01T00:00:00Z", "2024-05-01T00:00:00Z")
    assert event.payload["lines"][0]["amount"] == -2000 and event.payload["lines"][0]["unused_days"] == 20
    (row,) = await period_rows(db, sub["id"])
    assert row.amount_credited == 2000


async def test_cancel_an_unpaid_period_credits_nothing(client, admin_headers, service_env, test_clock, customer_id, user_headers):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers, amount=3000)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    test_clock.set(2024, 4, 2)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.canceled")
        response = await client.post(f"/api/subscriptions/{sub['id']}/cancel", json={}, headers=user_headers)
        (event,) = await events_for(bus, "subscription.canceled", sub["id"])
    assert response.json()["credit_amount"] == 0 and response.json()["lines"] == []
    assert event.payload["credit_amount"] == 0


async def test_a_credit_never_exceeds_what_was_paid(client, admin_headers, service_env, db, test_clock, customer_id, user_headers):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers, amount=3000)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    async with EventBus(service_env.amqp_url) as bus:
        await pay_period(bus, db, sub, 500, datetime(2024, 4, 1, 1, tzinfo=UTC))  # a partial payment
    response = await client.post(f"/api/subscriptions/{sub['id']}/cancel", headers=user_headers)
    assert response.json()["credit_amount"] == 500


async def test_admin_prorates_at_a_given_instant(client, admin_headers, service_env, db, test_clock, customer_id, user_headers):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers, amount=3000)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    async with EventBus(service_env.amqp_url) as bus:
        await pay_period(bus, db, sub, 3000, datetime(2024, 4, 1, 1, tzinfo=UTC))
    test_clock.set(2024, 4, 20)
    body = {"proration_date": "2024-04-02T00:00:00Z"}
    as_user = await client.post(f"/api/subscriptions/{sub['id']}/cancel", json=body, headers=user_headers)
    assert as_user.status_code == 403 and as_user.json()["error"]["field"] == "proration_date"
    response = await client.post(f"/api/subscriptions/{sub['id']}/cancel", json=body, headers=admin_headers)
    assert response.json()["credit_amount"] == 2900  # 29 of 30 days


async def test_proration_date_outside_the_period_is_422_and_nothing_changes(client, admin_headers, db, test_clock, customer_id, user_headers):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    for instant in ("2024-03-31T23:59:59Z", "2024-05-01T00:00:00Z"):
        response = await client.post(
            f"/api/subscriptions/{sub['id']}/cancel", json={"proration_date": instant}, headers=admin_headers
        )
        assert response.status_code == 422 and response.json()["error"]["field"] == "proration_date"
    assert (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()["status"] == "active"


async def test_cancel_twice_is_409(client, admin_headers, test_clock, customer_id, user_headers):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    assert (await client.post(f"/api/subscriptions/{sub['id']}/cancel", headers=user_headers)).status_code == 200
    again = await client.post(f"/api/subscriptions/{sub['id']}/cancel", headers=user_headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_canceled"


async def test_a_retried_cancel_with_the_same_key_replays_its_answer(client, admin_headers, test_clock, customer_id, user_headers):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    headers = {**user_headers, "Idempotency-Key": uuid.uuid4().hex}
    first = await client.post(f"/api/subscriptions/{sub['id']}/cancel", headers=headers)
    second = await client.post(f"/api/subscriptions/{sub['id']}/cancel", headers=headers)
    assert first.status_code == second.status_code == 200 and first.json() == second.json()


async def test_another_user_with_the_owners_key_gets_no_replay_of_the_owners_cancel(
    client, admin_headers, service_env, customer_id, user_headers
):
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    key = {"Idempotency-Key": uuid.uuid4().hex}
    owner = await client.post(f"/api/subscriptions/{sub['id']}/cancel", headers={**user_headers, **key})
    assert owner.status_code == 200
    for action, body in (("cancel", {}), ("change", {"plan_id": plan["id"]})):
        stranger = {**service_env.auth(uuid.uuid4()), **key}
        response = await client.post(f"/api/subscriptions/{sub['id']}/{action}", json=body, headers=stranger)
        assert response.status_code == 404, (action, response.text)  # as without a key: nothing to see


async def test_cancel_at_period_end_keeps_it_active_until_the_run_ends_it(
    client, admin_headers, service_env, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    test_clock.set(2024, 4, 10)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.canceled", "subscription.renewed")
        flagged = await client.post(f"/api/subscriptions/{sub['id']}/cancel", json={"at_period_end": True}, headers=user_headers)
        assert flagged.json()["status"] == "active" and flagged.json()["cancel_at_period_end"] is True
        twice = await client.post(f"/api/subscriptions/{sub['id']}/cancel", json={"at_period_end": True}, headers=user_headers)
        assert twice.status_code == 409
        await bill(client, admin_headers, "2024-04-30T23:00:00Z")
        assert (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()["status"] == "active"
        await bill(client, admin_headers, "2024-06-15T00:00:00Z")
        (event,) = await events_for(bus, "subscription.canceled", sub["id"])
    ended = (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()
    assert ended["status"] == "canceled" and ended["ended_at"] == "2024-05-01T00:00:00Z"
    assert event.payload["at_period_end"] is True and event.payload["credit_amount"] == 0
    assert event.payload["ends_at"] == "2024-05-01T00:00:00Z"
    assert [e for e in bus.of_type("subscription.renewed") if e.payload["subscription_id"] == sub["id"]] == []


async def test_canceling_a_paused_subscription_at_period_end_is_refused(client, admin_headers, test_clock, customer_id, user_headers):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    await client.post(f"/api/subscriptions/{sub['id']}/pause", headers=user_headers)
    response = await client.post(f"/api/subscriptions/{sub['id']}/cancel", json={"at_period_end": True}, headers=user_headers)
    assert response.status_code == 409


async def test_cancel_body_fields_are_checked(client, admin_headers, test_clock, customer_id, user_headers):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    for body in ({"at_period_end": "yes"}, {"refund": True}):
        response = await client.post(f"/api/subscriptions/{sub['id']}/cancel", json=body, headers=user_headers)
        assert response.status_code == 422
    assert (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()["status"] == "active"


async def test_cancel_after_a_billing_run_ahead_credits_the_rest_of_this_period_and_all_of_the_next(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers, name="Pro", amount=3000)
    april = await subscribe(client, user_headers, customer_id, plan["id"])
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.canceled")
        await pay_period(bus, db, april, 3000, datetime(2024, 4, 1, 1, tzinfo=UTC))
        test_clock.set(2024, 4, 28)
        await bill(client, admin_headers, "2024-05-01T00:00:00Z")  # May billed three days ahead
        may = (await client.get(f"/api/subscriptions/{april['id']}", headers=user_headers)).json()
        await pay_period(bus, db, may, 3000, datetime(2024, 4, 28, 1, tzinfo=UTC))
        test_clock.set(2024, 4, 28, 12)  # 27 whole days of April used, 3 unused
        canceled = await client.post(f"/api/subscriptions/{april['id']}/cancel", headers=user_headers)
        (event,) = await events_for(bus, "subscription.canceled", april["id"])

    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["credit_amount"] == 300 + 3000
    lines = [(line["amount"], line["description"], line["period_start"]) for line in event.payload["lines"]]
    assert lines == [
        (-300, "Unused time: 3 of 30 days of Pro", "2024-04-01T00:00:00Z"),
        (-3000, "Unused time: 31 of 31 days of Pro", "2024-05-01T00:00:00Z"),
    ]
    # The event names the period the cancel fell in; each line names the period whose invoices it credits.
    assert (event.payload["period_start"], event.payload["credit_amount"]) == ("2024-04-01T00:00:00Z", 3300)
    assert [r.amount_credited for r in await period_rows(db, april["id"])] == [300, 3000]


async def test_a_period_paid_after_a_cancel_ahead_of_its_billing_earns_its_unused_days_then(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers, name="Pro", amount=3000)
    april = await subscribe(client, user_headers, customer_id, plan["id"])
    test_clock.set(2024, 4, 28)
    await bill(client, admin_headers, "2024-05-01T00:00:00Z")
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.canceled")
        canceled = await client.post(f"/api/subscriptions/{april['id']}/cancel", headers=user_headers)
        assert canceled.json()["credit_amount"] == 0  # neither period paid yet
        await pay_period(bus, db, april, 3000, datetime(2024, 4, 29, tzinfo=UTC))  # April's invoice, late
        _, correction = await events_for(bus, "subscription.canceled", april["id"], count=2)
    assert correction.payload["correction"] is True and correction.payload["credit_amount"] == 300
    assert correction.payload["period_start"] == "2024-04-01T00:00:00Z"


async def test_cancel_before_a_period_billed_ahead_begins_credits_all_of_it(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers, name="Pro", amount=3000)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    test_clock.set(2024, 4, 28)
    await bill(client, admin_headers, "2024-05-01T00:00:00Z")  # May billed three days ahead
    sub = (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()
    async with EventBus(service_env.amqp_url) as bus:
        await pay_period(bus, db, sub, 3000, datetime(2024, 4, 28, 1, tzinfo=UTC))
    canceled = await client.post(f"/api/subscriptions/{sub['id']}/cancel", headers=user_headers)

    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["credit_amount"] == 3000  # none of May was used
    assert [line["description"] for line in canceled.json()["lines"]] == ["Unused time: 31 of 31 days of Pro"]
