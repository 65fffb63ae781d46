"""Billing runs: one period at a time, calendar-correct, each period renewed exactly once however many runners."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from billing_shared.testing import EventBus, wait_for

from app.bench_support import seed_due
from app.db.models import SubscriptionPeriod
from app.service.billing_run import run_billing
from tests.integration.helpers import bill, cancel_plan_subscriptions, create_plan, events_for, period_rows, subscribe


async def test_a_year_of_monthly_runs_gives_12_calendar_correct_renewals(
    client, admin_headers, service_env, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 1, 31)
    plan = await create_plan(client, admin_headers)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.renewed")
        sub = await subscribe(client, user_headers, customer_id, plan["id"])
        month_ends = ["2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30", "2024-07-31",
                      "2024-08-31", "2024-09-30", "2024-10-31", "2024-11-30", "2024-12-31", "2025-01-31"]
        for day in month_ends:
            test_clock.set(*map(int, day.split("-")), 12)
            await bill(client, admin_headers, f"{day}T12:00:00Z")
        renewals = await events_for(bus, "subscription.renewed", sub["id"], count=12)
    assert [e.payload["period_start"][:10] for e in renewals] == month_ends
    assert [e.payload["period_index"] for e in renewals] == list(range(1, 13))
    assert renewals[-1].payload["period_end"] == "2025-02-28T00:00:00Z"
    assert all(e.occurred_at.isoformat()[:10] == e.payload["period_start"][:10] for e in renewals)
    now = (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()
    assert (now["current_period_index"], now["current_period_start"]) == (12, "2025-01-31T00:00:00Z")
    # Each renewal names its own invoice; the subscription shows the current period's.
    invoice_ids = [e.payload["invoice_id"] for e in renewals]
    assert len(set(invoice_ids) | {sub["period_invoice_id"]}) == 13 and now["period_invoice_id"] == invoice_ids[-1]


async def test_as_of_three_months_ahead_renews_three_times_one_period_each(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 5, 10)
    plan = await create_plan(client, admin_headers, amount=700)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.renewed")
        sub = await subscribe(client, user_headers, customer_id, plan["id"])
        summary = await bill(client, admin_headers, "2024-08-10T00:00:00Z")
        renewals = await events_for(bus, "subscription.renewed", sub["id"], count=3)
    assert summary["renewed"] >= 3 and summary["failed"] == 0
    assert [(e.payload["period_start"][:10], e.payload["period_end"][:10]) for e in renewals] == [
        ("2024-06-10", "2024-07-10"), ("2024-07-10", "2024-08-10"), ("2024-08-10", "2024-09-10")
    ]
    rows = await period_rows(db, sub["id"])
    assert [(r.period_index, r.amount) for r in rows] == [(0, 700), (1, 700), (2, 700), (3, 700)]


async def test_as_of_before_the_period_end_and_runs_in_the_past_change_nothing(
    client, admin_headers, db, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 6, 15)
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    for as_of in ("2024-07-14T23:59:59Z", "2024-06-01T00:00:00Z", "2020-01-01T00:00:00Z"):
        await bill(client, admin_headers, as_of)
    assert len(await period_rows(db, sub["id"])) == 1
    again = (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()
    assert again["current_period_end"] == sub["current_period_end"] and again["updated_at"] == sub["updated_at"]


async def test_a_trial_ends_into_an_active_paid_period(client, admin_headers, service_env, test_clock, customer_id, user_headers):
    test_clock.set(2024, 4, 1)
    plan = await create_plan(client, admin_headers, trial_days=7, amount=2500)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.renewed")
        sub = await subscribe(client, user_headers, customer_id, plan["id"])
        await bill(client, admin_headers, "2024-04-08T00:00:00Z")
        (renewal,) = await events_for(bus, "subscription.renewed", sub["id"])
    assert renewal.payload["status"] == "active" and renewal.payload["amount"] == 2500
    assert (renewal.payload["period_start"], renewal.payload["period_end"]) == ("2024-04-08T00:00:00Z", "2024-05-08T00:00:00Z")
    after = (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()
    assert after["status"] == "active"


async def renewals_by_subscription(db, plan_id) -> tuple[list, list]:
    """(subscription id, period rows) and (subscription id, period index, outbox events) for one seeded plan."""
    async with db.sessions() as session:
        per_subscription = (
            await session.execute(
                select(SubscriptionPeriod.subscription_id, func.count())
                .where(SubscriptionPeriod.plan_id == plan_id)
                .group_by(SubscriptionPeriod.subscription_id)
            )
        ).all()
        events = (
            await session.execute(
                text(
                    "SELECT body->'payload'->>'subscription_id' AS sid, body->'payload'->>'period_index' AS idx, count(*) "
                    "FROM outbox WHERE routing_key = 'subscription.renewed' AND body->'payload'->>'plan_id' = :plan "
                    "GROUP BY 1, 2"
                ),
                {"plan": str(plan_id)},
            )
        ).all()
    return per_subscription, events


async def test_two_runners_at_once_renew_each_period_exactly_once(db, service_env):
    as_of = datetime(2001, 3, 1, tzinfo=UTC)  # an era no other test bills in
    seeded = await seed_due(service_env.database_url("subscription"), 1000, as_of, periods_due=2)
    try:
        first, second = await asyncio.gather(
            run_billing(db, as_of, batch_size=50), run_billing(db, as_of, batch_size=50)
        )
        assert first.renewed + second.renewed == 2000
        assert first.renewed > 0 and second.renewed > 0  # both really worked
        per_subscription, events = await renewals_by_subscription(db, seeded.plan_id)
        assert len(per_subscription) == 1000 and {count for _, count in per_subscription} == {3}
        assert len(events) == 2000 and {count for *_, count in events} == {1}
        assert {idx for _, idx, _ in events} == {"1", "2"}
    finally:
        await cancel_plan_subscriptions(db, seeded.plan_id)


async def test_one_run_working_on_several_batches_at_once_renews_each_period_exactly_once(db, service_env):
    as_of = datetime(2002, 3, 1, tzinfo=UTC)  # an era no other test bills in
    seeded = await seed_due(service_env.database_url("subscription"), 300, as_of, periods_due=3)
    claims: list[int] = []
    try:
        summary = await run_billing(db, as_of, batch_size=25, concurrency=4, on_progress=claims.append)
        assert (summary.renewed, summary.failed, sum(claims)) == (900, 0, 900)
        per_subscription, events = await renewals_by_subscription(db, seeded.plan_id)
        assert len(per_subscription) == 300 and {count for _, count in per_subscription} == {4}
        assert len(events) == 900 and {count for *_, count in events} == {1}
        assert {idx for _, idx, _ in events} == {"1", "2", "3"}
    finally:
        await cancel_plan_subscriptions(db, seeded.plan_id)


async def test_a_scheduled_downgrade_applies_at_renewal(client, admin_headers, service_env, test_clock, customer_id, user_headers):
    test_clock.set(2024, 9, 1)
    pro = await create_plan(client, admin_headers, amount=5000)
    basic = await create_plan(client, admin_headers, amount=1000)
    sub = await subscribe(client, user_headers, customer_id, pro["id"])
    change = await client.post(f"/api/subscriptions/{sub['id']}/change", json={"plan_id": basic["id"]}, headers=user_headers)
    assert change.status_code == 200 and change.json()["pending_plan_id"] == basic["id"]
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.renewed")
        await bill(client, admin_headers, "2024-10-01T00:00:00Z")
        (renewal,) = await events_for(bus, "subscription.renewed", sub["id"])
    assert (renewal.payload["plan_id"], renewal.payload["amount"]) == (basic["id"], 1000)
    after = (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()
    assert after["plan_id"] == basic["id"] and after["pending_plan_id"] is None


async def test_billing_runs_are_for_admins_and_need_an_aware_as_of(client, admin_headers, user_headers):
    assert (await client.post("/api/billing-runs", json={}, headers=user_headers)).status_code == 403
    naive = await client.post("/api/billing-runs", json={"as_of": "2024-01-01T00:00:00"}, headers=admin_headers)
    assert naive.status_code == 422 and naive.json()["error"]["field"] == "as_of"
    far = await client.post("/api/billing-runs", json={"as_of": "2999-01-01T00:00:00Z"}, headers=admin_headers)
    assert far.status_code == 422 and far.json()["error"]["field"] == "as_of"
    bogus = await client.post("/api/billing-runs", json={"as_of": "soon"}, headers=admin_headers)
    assert bogus.status_code == 422


async def test_billing_run_without_a_body_bills_now(client, admin_headers):
    response = await client.post("/api/billing-runs", headers=admin_headers)
    assert response.status_code == 200
    assert set(response.json()) == {"as_of", "renewed", "ended", "resumed", "skipped", "failed"}


async def test_one_broken_subscription_fails_alone_and_the_rest_renew(db, service_env):
    as_of = datetime(1997, 3, 1, tzinfo=UTC)
    seeded = await seed_due(service_env.database_url("subscription"), 10, as_of)
    try:
        async with db.uow() as uow:
            broken = await uow.session.scalar(
                text("UPDATE subscriptions SET anchor_period_index = 99 WHERE id = "
                     "(SELECT id FROM subscriptions WHERE plan_id = :p LIMIT 1) RETURNING id"),
                {"p": seeded.plan_id},
            )
            await uow.commit()
        summary = await run_billing(db, as_of, batch_size=4)
        assert (summary.renewed, summary.failed, summary.failed_ids) == (9, 1, {broken})
        async with db.sessions() as session:
            broken_periods = await session.scalar(
                select(func.count()).where(SubscriptionPeriod.subscription_id == broken)
            )
        assert broken_periods == 1
    finally:
        await cancel_plan_subscriptions(db, seeded.plan_id)


async def test_a_due_subscription_held_by_a_short_transaction_is_renewed_once_it_is_released(db, service_env):
    # The invoice.paid handler locks the subscription row for a moment; a run arriving then must not report
    # "nothing due" and leave the renewal to some later run.
    as_of = datetime(1995, 3, 1, tzinfo=UTC)
    seeded = await seed_due(service_env.database_url("subscription"), 3, as_of)
    claims: list[int] = []
    try:
        async with db.uow() as holder:
            held = await holder.session.scalar(
                text("SELECT id FROM subscriptions WHERE plan_id = :p ORDER BY id LIMIT 1 FOR UPDATE"),
                {"p": seeded.plan_id},
            )

            async def release_once_skipped() -> None:
                # The claim skips locked rows (SKIP LOCKED: the run never waits on the lock). Once the other two
                # are renewed and committed, a claim has passed over the held one: release it only then, so the
                # run has to notice that it is still due and come back for it.
                async def others_renewed() -> bool:
                    return sum(claims) == 2

                await wait_for(others_renewed, message="the run to renew the two subscriptions not held")
                await holder.rollback()

            summary, _ = await asyncio.gather(
                run_billing(db, as_of, batch_size=10, on_progress=claims.append), release_once_skipped()
            )
        assert (summary.renewed, summary.failed, sum(claims)) == (3, 0, 3)
        async with db.sessions() as session:
            held_periods = await session.scalar(select(func.count()).where(SubscriptionPeriod.subscription_id == held))
        assert held_periods == 2
    finally:
        await cancel_plan_subscriptions(db, seeded.plan_id)
