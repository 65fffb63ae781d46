"""Pause and resume: nothing is billed while paused; paused time is never billed."""

from __future__ import annotations

from billing_shared.testing import EventBus

from tests.integration.helpers import bill, create_plan, events_for, period_rows, subscribe


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
