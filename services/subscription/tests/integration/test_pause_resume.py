"""Pause and resume: nothing is billed while paused; paused time is never billed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from billing_shared.contracts import DunningExhausted, DunningRetryScheduled
from billing_shared.testing import EventBus, wait_for

from tests.integration.helpers import (
    bill,
    create_plan,
    dunning_event,
    events_for,
    handled_since,
    handled_so_far,
    period_rows,
    subscribe,
)
from tests.integration.test_cancel import pay_period
from tests.integration.test_consumers import july_subscription, status_of


async def test_nothing_is_billed_while_paused_and_resuming_late_starts_a_fresh_period(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    test_clock.set(2025, 1, 10)
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.paused", "subscription.resumed", "subscription.renewed")
        paused = await client.post(f"/api/subscriptions/{sub['id']}/pause", headers=user_headers)
        assert paused.json()["status"] == "paused" and paused.json()["paused"] is True
        summary = await bill(client, admin_headers, "2025-04-01T00:00:00Z")
        assert summary["skipped"] >= 1
        assert len(await period_rows(db, sub["id"])) == 1
        test_clock.set(2025, 4, 5, 9)
        resumed = (await client.post(f"/api/subscriptions/{sub['id']}/resume", headers=user_headers)).json()
        await events_for(bus, "subscription.paused", sub["id"])
        await events_for(bus, "subscription.resumed", sub["id"])
        (renewal,) = await events_for(bus, "subscription.renewed", sub["id"])
    assert resumed["status"] == "active"
    assert (resumed["current_period_start"], resumed["current_period_end"]) == ("2025-04-05T09:00:00Z", "2025-05-05T09:00:00Z")
    assert renewal.payload["period_index"] == 1 and renewal.payload["period_start"] == "2025-04-05T09:00:00Z"
    assert renewal.payload["invoice_id"] == resumed["period_invoice_id"] != sub["period_invoice_id"]


async def test_resuming_inside_the_paused_period_continues_it(client, admin_headers, db, test_clock, customer_id, user_headers):
    test_clock.set(2025, 1, 10)
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    await client.post(f"/api/subscriptions/{sub['id']}/pause", headers=user_headers)
    test_clock.set(2025, 1, 20)
    resumed = (await client.post(f"/api/subscriptions/{sub['id']}/resume", headers=user_headers)).json()
    assert resumed["current_period_end"] == sub["current_period_end"] == "2025-02-10T00:00:00Z"
    assert len(await period_rows(db, sub["id"])) == 1


async def test_resuming_inside_a_trial_is_trialing_again_and_its_end_bills_the_first_period(
    client, admin_headers, test_clock, customer_id, user_headers
):
    test_clock.set(2025, 1, 10)
    plan = await create_plan(client, admin_headers, trial_days=14)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    await client.post(f"/api/subscriptions/{sub['id']}/pause", headers=user_headers)
    test_clock.set(2025, 1, 15)
    resumed = (await client.post(f"/api/subscriptions/{sub['id']}/resume", headers=user_headers)).json()
    assert (resumed["status"], resumed["trial_end"]) == ("trialing", "2025-01-24T00:00:00Z")  # not yet revenue
    await bill(client, admin_headers, "2025-01-24T00:00:00Z")
    after = (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()
    assert (after["status"], after["current_period_start"]) == ("active", "2025-01-24T00:00:00Z")


async def test_a_scheduled_resume_happens_at_resumes_at(client, admin_headers, service_env, test_clock, customer_id, user_headers):
    test_clock.set(2025, 1, 10)
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    body = {"resumes_at": "2025-03-01T00:00:00Z"}
    paused = (await client.post(f"/api/subscriptions/{sub['id']}/pause", json=body, headers=user_headers)).json()
    assert paused["resumes_at"] == "2025-03-01T00:00:00Z"
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.resumed")
        summary = await bill(client, admin_headers, "2025-03-02T00:00:00Z")
        (event,) = await events_for(bus, "subscription.resumed", sub["id"])
    assert summary["resumed"] >= 1 and event.payload["at"] == "2025-03-01T00:00:00Z"
    after = (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()
    assert after["status"] == "active" and after["current_period_start"] == "2025-03-01T00:00:00Z"


async def test_pausing_a_canceled_subscription_is_409_and_changes_nothing(client, admin_headers, test_clock, customer_id, user_headers):
    test_clock.set(2025, 1, 10)
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    await client.post(f"/api/subscriptions/{sub['id']}/cancel", headers=user_headers)
    response = await client.post(f"/api/subscriptions/{sub['id']}/pause", headers=user_headers)
    assert response.status_code == 409 and "canceled" in response.json()["error"]["message"]
    assert (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()["status"] == "canceled"


async def test_resume_of_an_active_subscription_and_a_past_resume_date_are_refused(
    client, admin_headers, test_clock, customer_id, user_headers
):
    test_clock.set(2025, 1, 10)
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    assert (await client.post(f"/api/subscriptions/{sub['id']}/resume", headers=user_headers)).status_code == 409
    past = await client.post(f"/api/subscriptions/{sub['id']}/pause", json={"resumes_at": "2025-01-01T00:00:00Z"}, headers=user_headers)
    assert past.status_code == 422 and past.json()["error"]["field"] == "resumes_at"
    assert (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()["status"] == "active"


async def _paused_with_a_failed_charge(
    bus, client, admin_headers, test_clock, customer_id, user_headers, resumes_at: str | None = None
):
    """A July 2024 subscription paused on the 1st while its first charge was pending; the charge failed on the 2nd
    and dunning retries it. Returns the subscription and the overdue invoice's id."""
    sub = await july_subscription(client, admin_headers, test_clock, customer_id, user_headers)
    body = {"resumes_at": resumes_at} if resumes_at else None
    paused = await client.post(f"/api/subscriptions/{sub['id']}/pause", json=body, headers=user_headers)
    assert paused.json()["status"] == "paused", paused.text
    invoice_id = uuid.uuid4()
    seen = handled_so_far("dunning.retry_scheduled")
    failed = dunning_event(DunningRetryScheduled, sub, failures=1, invoice_id=invoice_id)
    await bus.publish(failed, occurred_at=datetime(2024, 7, 2, tzinfo=UTC))
    await wait_for(lambda: handled_since(seen, "dunning.retry_scheduled"), message="dunning.retry_scheduled handled")
    assert await status_of(client, sub, user_headers, "paused")  # a pause is not interrupted by dunning's retries
    return sub, invoice_id


async def _resume(client, sub, user_headers) -> dict:
    response = await client.post(f"/api/subscriptions/{sub['id']}/resume", headers=user_headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_charge_that_failed_while_paused_resumes_it_past_due_until_paid(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    async with EventBus(service_env.amqp_url) as bus:
        sub, invoice_id = await _paused_with_a_failed_charge(
            bus, client, admin_headers, test_clock, customer_id, user_headers
        )
        test_clock.set(2024, 7, 10)
        assert (await _resume(client, sub, user_headers))["status"] == "past_due"
        await pay_period(bus, db, sub, 3000, datetime(2024, 7, 11, tzinfo=UTC), invoice_id=invoice_id)
        await wait_for(lambda: status_of(client, sub, user_headers, "active"), message="active once paid")


async def test_a_charge_paid_while_paused_resumes_it_active(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    async with EventBus(service_env.amqp_url) as bus:
        sub, invoice_id = await _paused_with_a_failed_charge(
            bus, client, admin_headers, test_clock, customer_id, user_headers
        )
        await pay_period(bus, db, sub, 3000, datetime(2024, 7, 5, tzinfo=UTC), invoice_id=invoice_id)
        assert await status_of(client, sub, user_headers, "paused")
        test_clock.set(2024, 7, 10)
        assert (await _resume(client, sub, user_headers))["status"] == "active"


async def test_dunning_giving_up_while_paused_suspends_and_settling_the_debt_returns_it_to_its_pause(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.suspended", "subscription.reactivated", "subscription.renewed")
        sub, invoice_id = await _paused_with_a_failed_charge(
            bus, client, admin_headers, test_clock, customer_id, user_headers
        )
        exhausted = dunning_event(DunningExhausted, sub, failures=4, invoice_id=invoice_id)
        await bus.publish(exhausted, occurred_at=datetime(2024, 7, 20, tzinfo=UTC))
        (suspended,) = await events_for(bus, "subscription.suspended", sub["id"])
        # A paused subscription has no service left to run on; the suspension email is written from this event.
        assert suspended.payload["service_ends_at"] == "2024-07-20T00:00:00Z"
        assert (suspended.payload["amount"], suspended.payload["invoice_id"]) == (3000, str(invoice_id))
        refused = await client.post(f"/api/subscriptions/{sub['id']}/resume", headers=user_headers)
        assert refused.status_code == 409  # suspended: it resumes only once its debt is settled
        test_clock.set(2024, 8, 15)
        await pay_period(bus, db, sub, 3000, datetime(2024, 8, 15, tzinfo=UTC), invoice_id=invoice_id)
        (back,) = await events_for(bus, "subscription.reactivated", sub["id"])
        assert back.payload["status"] == "paused"
        assert await status_of(client, sub, user_headers, "paused")
        # Back in its pause, it is not billed; resumed, it starts a fresh period then.
        await bill(client, admin_headers, "2024-08-20T00:00:00Z")
        assert not [e for e in bus.of_type("subscription.renewed") if e.payload["subscription_id"] == sub["id"]]
        test_clock.set(2024, 8, 21)
        resumed = await _resume(client, sub, user_headers)
        assert (resumed["status"], resumed["current_period_start"]) == ("active", "2024-08-21T00:00:00Z")


async def test_a_pause_due_to_end_during_the_suspension_ends_when_the_debt_is_paid_and_bills_no_suspended_month(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.suspended", "subscription.reactivated")
        sub, invoice_id = await _paused_with_a_failed_charge(
            bus, client, admin_headers, test_clock, customer_id, user_headers, resumes_at="2024-08-15T00:00:00Z"
        )
        await bus.publish(dunning_event(DunningExhausted, sub, failures=4, invoice_id=invoice_id),
                          occurred_at=datetime(2024, 7, 20, tzinfo=UTC))
        await events_for(bus, "subscription.suspended", sub["id"])
        await bill(client, admin_headers, "2024-08-20T00:00:00Z")
        assert await status_of(client, sub, user_headers, "suspended")  # not resumed: it is no longer paused
        test_clock.set(2024, 11, 20)
        await pay_period(bus, db, sub, 3000, datetime(2024, 11, 20, tzinfo=UTC), invoice_id=invoice_id)
        (back,) = await events_for(bus, "subscription.reactivated", sub["id"])
    # Its pause was to end on August 15: it is active from the payment on, not resumed back then.
    assert back.payload["status"] == "active"
    after = (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()
    assert (after["current_period_start"], after["paused_at"], after["resumes_at"]) == (
        "2024-11-20T00:00:00Z", None, None
    )
    await bill(client, admin_headers, "2024-11-20T00:00:00Z")
    starts = [r.period_start.isoformat() for r in await period_rows(db, sub["id"])]
    assert starts == ["2024-07-01T00:00:00+00:00", "2024-11-20T00:00:00+00:00"]


async def test_a_suspended_subscription_cannot_be_paused(
    client, admin_headers, service_env, test_clock, customer_id, user_headers
):
    sub = await july_subscription(client, admin_headers, test_clock, customer_id, user_headers)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.suspended")
        await bus.publish(dunning_event(DunningExhausted, sub, failures=4, invoice_id=uuid.uuid4()),
                          occurred_at=datetime(2024, 7, 20, tzinfo=UTC))
        await events_for(bus, "subscription.suspended", sub["id"])
    test_clock.set(2024, 8, 10)
    refused = await client.post(f"/api/subscriptions/{sub['id']}/pause", headers=user_headers)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "invalid_status"
    assert await status_of(client, sub, user_headers, "suspended")


async def test_a_retried_resume_with_the_same_key_replays_its_answer_and_bills_once(
    client, admin_headers, db, test_clock, customer_id, user_headers
):
    test_clock.set(2025, 1, 10)
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    await client.post(f"/api/subscriptions/{sub['id']}/pause", headers=user_headers)
    test_clock.set(2025, 3, 1)  # past the paused period: the resume starts a billed period
    headers = {**user_headers, "Idempotency-Key": uuid.uuid4().hex}
    first = await client.post(f"/api/subscriptions/{sub['id']}/resume", headers=headers)
    second = await client.post(f"/api/subscriptions/{sub['id']}/resume", headers=headers)
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert len(await period_rows(db, sub["id"])) == 2
