"""Plan changes: upgrades now with proration lines, downgrades at period end, same currency and interval only."""

from __future__ import annotations

from datetime import UTC, datetime

from billing_shared.testing import EventBus, wait_for

from tests.integration.helpers import bill, create_plan, events_for, period_rows, subscribe
from tests.integration.test_cancel import pay_period


async def test_upgrade_credits_unused_old_and_charges_remaining_new(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 4, 1)
    basic = await create_plan(client, admin_headers, name="Basic", amount=1000)
    pro = await create_plan(client, admin_headers, name="Pro", amount=4000)
    sub = await subscribe(client, user_headers, customer_id, basic["id"])
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.plan_changed")
        await pay_period(bus, db, sub, 1000, datetime(2024, 4, 1, 1, tzinfo=UTC))
        test_clock.set(2024, 4, 16)  # 15 of 30 days left
        response = await client.post(f"/api/subscriptions/{sub['id']}/change", json={"plan_id": pro["id"]}, headers=user_headers)
        (event,) = await events_for(bus, "subscription.plan_changed", sub["id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["plan_id"] == pro["id"] and body["pending_plan_id"] is None
    assert [line["amount"] for line in body["lines"]] == [-500, 2000]
    assert [line["description"] for line in body["lines"]] == [
        "Unused time: 15 of 30 days of Basic", "Remaining time: 15 of 30 days of Pro"
    ]
    assert event.payload["effective"] == "now" and event.payload["effective_at"] == "2024-04-16T00:00:00Z"
    assert [line["amount"] for line in event.payload["lines"]] == [-500, 2000]
    assert event.payload["change_id"] is not None  # the invoice service bills each change once, by this id
    (row,) = await period_rows(db, sub["id"])
    # The 500 credit paid part of the 2000 charge: nothing went back to the customer, nothing is credited.
    assert (row.amount, row.amount_credited) == (4000, 0)


async def test_a_cancel_after_an_upgrade_credits_the_new_plans_unused_days(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 4, 1)
    basic = await create_plan(client, admin_headers, name="Basic", amount=1000)
    plus = await create_plan(client, admin_headers, name="Plus", amount=1100)
    sub = await subscribe(client, user_headers, customer_id, basic["id"])
    async with EventBus(service_env.amqp_url) as bus:
        await pay_period(bus, db, sub, 1000, datetime(2024, 4, 1, 1, tzinfo=UTC))
        test_clock.set(2024, 4, 2)
        changed = await client.post(f"/api/subscriptions/{sub['id']}/change", json={"plan_id": plus["id"]},
                                    headers=user_headers)
        assert [line["amount"] for line in changed.json()["lines"]] == [-967, 1063]
        await pay_period(bus, db, sub, 96, datetime(2024, 4, 2, 1, tzinfo=UTC))  # the plan change's invoice
    test_clock.set(2024, 4, 3)  # 28 of 30 days of Plus left
    canceled = await client.post(f"/api/subscriptions/{sub['id']}/cancel", headers=user_headers)

    assert canceled.status_code == 200, canceled.text
    # 1096 paid for a day of each plan (33 + 37) and 28 unused days of Plus: 1027 back. When the upgrade's
    # 967 counted as given back already, the cancel was capped at 1096 - 967 = 129.
    assert canceled.json()["credit_amount"] == 1027


async def test_an_upgrade_in_an_unpaid_period_credits_the_old_plan_once_its_invoice_is_paid(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 4, 1)
    basic = await create_plan(client, admin_headers, name="Basic", amount=1000)
    pro = await create_plan(client, admin_headers, name="Pro", amount=4000)
    sub = await subscribe(client, user_headers, customer_id, basic["id"])
    test_clock.set(2024, 4, 16)  # the period's invoice (1000) is still unpaid
    changed = await client.post(f"/api/subscriptions/{sub['id']}/change", json={"plan_id": pro["id"]},
                                headers=user_headers)
    assert [line["amount"] for line in changed.json()["lines"]] == [0, 2000]  # nothing paid, nothing credited yet
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.plan_changed")

        async def corrections() -> list | None:
            found = [e for e in bus.of_type("subscription.plan_changed")
                     if e.payload["subscription_id"] == sub["id"] and e.payload["correction"]]
            return found or None

        await pay_period(bus, db, sub, 1000, datetime(2024, 4, 20, tzinfo=UTC))
        (correction,) = await wait_for(corrections, message="the late credit of the plan change")
        await pay_period(bus, db, sub, 2000, datetime(2024, 4, 21, tzinfo=UTC))  # the change's invoice: owes nothing

    # 3000 paid for 15 days of each plan (500 + 2000): Basic's 15 unused days come back now, once.
    assert correction.payload["effective"] == "now" and correction.payload["change_id"] is None
    assert [(line["amount"], line["currency"]) for line in correction.payload["lines"]] == [(-500, "USD")]
    (row,) = await period_rows(db, sub["id"])
    assert (row.amount_paid, row.amount_credited) == (3000, 500)


async def test_downgrade_waits_for_the_period_end(client, admin_headers, service_env, test_clock, customer_id, user_headers):
    test_clock.set(2024, 4, 1)
    pro = await create_plan(client, admin_headers, amount=4000)
    basic = await create_plan(client, admin_headers, amount=1000)
    sub = await subscribe(client, user_headers, customer_id, pro["id"])
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.plan_changed")
        response = await client.post(f"/api/subscriptions/{sub['id']}/change", json={"plan_id": basic["id"]}, headers=user_headers)
        (event,) = await events_for(bus, "subscription.plan_changed", sub["id"])
    assert response.json()["plan_id"] == pro["id"] and response.json()["pending_plan_id"] == basic["id"]
    assert event.payload["effective"] == "period_end" and event.payload["effective_at"] == "2024-05-01T00:00:00Z"
    assert event.payload["lines"] == []


async def test_changes_across_currency_or_interval_are_refused(client, admin_headers, db, test_clock, customer_id, user_headers):
    test_clock.set(2024, 4, 1)
    monthly = await create_plan(client, admin_headers, amount=1000)
    euro = await create_plan(client, admin_headers, amount=2000, currency="EUR")
    yearly = await create_plan(client, admin_headers, amount=20000, interval="year")
    sub = await subscribe(client, user_headers, customer_id, monthly["id"])
    for target, code in ((euro, "currency_mismatch"), (yearly, "interval_mismatch"), (monthly, "same_plan")):
        response = await client.post(f"/api/subscriptions/{sub['id']}/change", json={"plan_id": target["id"]}, headers=user_headers)
        assert response.status_code == 422 and response.json()["error"]["code"] == code
        assert response.json()["error"]["field"] == "plan_id"
    after = (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()
    assert after["plan_id"] == monthly["id"] and after["pending_plan_id"] is None


async def test_a_canceled_subscription_cannot_change_plan(client, admin_headers, test_clock, customer_id, user_headers):
    test_clock.set(2024, 4, 1)
    basic = await create_plan(client, admin_headers, amount=1000)
    pro = await create_plan(client, admin_headers, amount=4000)
    sub = await subscribe(client, user_headers, customer_id, basic["id"])
    await client.post(f"/api/subscriptions/{sub['id']}/cancel", headers=user_headers)
    response = await client.post(f"/api/subscriptions/{sub['id']}/change", json={"plan_id": pro["id"]}, headers=user_headers)
    assert response.status_code == 409


async def test_an_upgrade_before_a_period_billed_ahead_begins_charges_all_of_it(
    client, admin_headers, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 4, 1)
    basic = await create_plan(client, admin_headers, name="Basic", amount=1000)
    pro = await create_plan(client, admin_headers, name="Pro", amount=4000)
    sub = await subscribe(client, user_headers, customer_id, basic["id"])
    test_clock.set(2024, 4, 28)
    await bill(client, admin_headers, "2024-05-01T00:00:00Z")  # May billed (at Basic's price) three days ahead
    changed = await client.post(f"/api/subscriptions/{sub['id']}/change", json={"plan_id": pro["id"]}, headers=user_headers)

    assert changed.status_code == 200, changed.text
    # May's Basic invoice is unpaid, so nothing is credited yet; all of May at Pro's price is charged.
    assert [line["amount"] for line in changed.json()["lines"]] == [0, 4000]
