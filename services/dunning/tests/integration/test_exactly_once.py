"""Redelivered events and concurrent schedulers: every retry slot is announced exactly once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from dunning_driver import Debt
from sqlalchemy import func, select

from app.scheduler import run_due
from billing_shared.db import Database
from billing_shared.plumbing_tables import outbox_table
from billing_shared.testing import events_handled, wait_for

DAY = timedelta(days=1)


def handled(outcome: str, event_type: str = "payment.failed") -> float:
    return events_handled("dunning", event_type, outcome)


async def handled_at_least(outcome: str, count: float) -> None:
    async def enough() -> bool:
        return handled(outcome) >= count

    await wait_for(enough, message=f"{count:.0f} payment.failed deliveries {outcome}")


async def outbox_count(app, routing_key: str, case_ids: set[str]) -> int:
    outbox = outbox_table("dunning")
    async with app.state.runtime.db.sessions() as session:
        return await session.scalar(
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.routing_key == routing_key, outbox.c.body["payload"]["case_id"].astext.in_(case_ids))
        )


async def test_a_failure_delivered_three_times_opens_one_case_with_one_retry_per_slot(app, client, dunning, epoch):
    debt = Debt()
    event_id = uuid.uuid4()
    duplicates_before, handled_before = handled("duplicate"), handled("handled")
    for _ in range(3):
        await dunning.fail(debt, epoch, event_id=event_id)
    # The same failure reported again under a new event id (attempt 1 again) is not a new failure either.
    await dunning.fail(debt, epoch + timedelta(minutes=5))
    await handled_at_least("duplicate", duplicates_before + 2)
    await handled_at_least("handled", handled_before + 2)

    listing = await client.get(
        "/api/dunning/cases", params={"customer_id": str(debt.customer_id)}, headers=dunning.admin
    )
    cases = listing.json()["data"]
    assert len(cases) == 1
    assert cases[0]["failures"] == 1
    case_id = cases[0]["id"]
    assert await outbox_count(app, "dunning.retry_scheduled", {case_id}) == 1

    assert (await dunning.run(epoch + 2 * DAY))["retries_due"] == 1
    assert (await dunning.run(epoch + 2 * DAY))["retries_due"] == 0
    assert await outbox_count(app, "dunning.retry_due", {case_id}) == 1
    assert len((await dunning.case(case_id))["attempts"]) == 2


async def test_a_retry_failure_delivered_twice_advances_the_case_once(app, dunning, epoch):
    debt = Debt()
    await dunning.fail(debt, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]
    await dunning.run(epoch + 2 * DAY)
    await dunning.wait_event("dunning.retry_due", debt)

    handled_before = handled("handled")
    await dunning.fail(debt, epoch + 2 * DAY, attempt=2, case_id=case_id)
    await dunning.fail(debt, epoch + 2 * DAY, attempt=2, case_id=case_id)  # another event id, same attempt
    await handled_at_least("handled", handled_before + 2)
    case = await dunning.case(case_id)
    assert (case["status"], case["failures"]) == ("open", 2)
    assert await outbox_count(app, "dunning.retry_scheduled", {case_id}) == 2
    assert await outbox_count(app, "dunning.final_notice", {case_id}) == 1


async def test_concurrent_schedulers_emit_each_due_retry_exactly_once(app, client, dunning, service_env, epoch):
    debts = [Debt() for _ in range(12)]
    for debt in debts:
        await dunning.fail(debt, epoch)
    case_ids = set()
    for debt in debts:
        case_ids.add((await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"])

    # Two API runs on this replica and a third scheduler on its own connection pool, as another replica.
    other_replica = Database(service_env.database_url("dunning"), "dunning", producer="dunning")
    try:
        results = await asyncio.gather(
            dunning.run(epoch + 2 * DAY),
            dunning.run(epoch + 2 * DAY),
            run_due(other_replica, epoch + 2 * DAY, batch_size=2),
        )
    finally:
        await other_replica.dispose()
    assert results[0]["retries_due"] + results[1]["retries_due"] + results[2].retries_due == len(debts)
    assert await outbox_count(app, "dunning.retry_due", case_ids) == len(debts)
    for debt in debts:
        retries = await dunning.wait_event("dunning.retry_due", debt)
        assert [r.payload["attempt"] for r in retries] == [2]
