"""Consumed events: invoice.paid marks the period paid and reactivates; dunning makes past_due, then suspends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from billing_shared.contracts import DunningExhausted, DunningRetryScheduled, InvoicePaid, InvoiceVoided
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


async def publish_late_payment(bus, sub: dict, period_start: datetime, paid_at: datetime) -> None:
    """invoice.paid for the whole 3000 of the subscription's period starting at `period_start`."""
    await bus.publish(
        InvoicePaid(
            invoice_id=uuid.uuid4(), customer_id=uuid.UUID(sub["customer_id"]), subscription_id=uuid.UUID(sub["id"]),
            currency="USD", total=3000, amount_paid=3000, paid_at=paid_at, period_start=period_start,
        ),
        occurred_at=paid_at,
    )


async def july_subscription(client, admin_headers, test_clock, customer_id, user_headers) -> dict:
    """A subscription of 30.00 a month, begun on 2024-07-01 (the test clock's time)."""
    test_clock.set(2024, 7, 1)
    plan = await create_plan(client, admin_headers, amount=3000)
    return await subscribe(client, user_headers, customer_id, plan["id"])


async def status_of(client, sub, headers, expected: str) -> bool:
    return (await client.get(f"/api/subscriptions/{sub['id']}", headers=headers)).json()["status"] == expected


async def test_a_redelivered_invoice_paid_counts_once(client, admin_headers, service_env, db, test_clock, customer_id, user_headers):
    sub = await july_subscription(client, admin_headers, test_clock, customer_id, user_headers)
    event_id = uuid.uuid4()
    paid = InvoicePaid(
        invoice_id=uuid.uuid4(), customer_id=uuid.UUID(customer_id.hex), subscription_id=uuid.UUID(sub["id"]),
        currency="USD", total=3000, amount_paid=3000, paid_at=datetime(2024, 7, 1, 1, tzinfo=UTC),
    )
    seen = handled_so_far("invoice.paid", "duplicate")
    async with EventBus(service_env.amqp_url) as bus:
        for _ in range(2):
            await bus.publish(paid, event_id=event_id)
        # The second copy is skipped only once the first one's inbox row is committed: then both are done.
        await wait_for(
            lambda: handled_since(seen, "invoice.paid", "duplicate"),
            message="the second copy of invoice.paid to be skipped",
        )
    (row,) = await period_rows(db, sub["id"])
    assert row.amount_paid == 3000


async def past_due(bus, client, admin_headers, test_clock, customer_id, user_headers) -> dict:
    """A subscription of July 2024 whose first payment failed on the 2nd: dunning retries it, so it is past due."""
    sub = await july_subscription(client, admin_headers, test_clock, customer_id, user_headers)
    await bus.publish(dunning_event(DunningRetryScheduled, sub, failures=1), occurred_at=datetime(2024, 7, 2, tzinfo=UTC))
    await wait_for(lambda: status_of(client, sub, user_headers, "past_due"), message="past_due")
    return sub


async def test_retry_scheduled_makes_it_past_due_and_payment_reactivates(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.reactivated")
        sub = await past_due(bus, client, admin_headers, test_clock, customer_id, user_headers)
        await pay_period(bus, db, sub, 3000, datetime(2024, 7, 4, tzinfo=UTC))
        (event,) = await events_for(bus, "subscription.reactivated", sub["id"])
    assert event.payload["status"] == "active"
    assert await status_of(client, sub, user_headers, "active")


async def test_an_unpaid_invoice_voided_makes_a_past_due_subscription_active_again(
    client, admin_headers, service_env, test_clock, customer_id, user_headers
):
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.reactivated")
        sub = await past_due(bus, client, admin_headers, test_clock, customer_id, user_headers)
        await bus.publish(
            InvoiceVoided(invoice_id=uuid.uuid4(), customer_id=uuid.UUID(sub["customer_id"]),
                          subscription_id=uuid.UUID(sub["id"]), currency="USD", total=3000),
            occurred_at=datetime(2024, 7, 3, tzinfo=UTC),
        )
        (event,) = await events_for(bus, "subscription.reactivated", sub["id"])
    assert (event.payload["status"], event.payload["at"]) == ("active", "2024-07-03T00:00:00Z")
    assert await status_of(client, sub, user_headers, "active")


async def test_dunning_events_of_a_voided_invoice_arriving_after_its_void_change_nothing(
    client, admin_headers, service_env, test_clock, customer_id, user_headers
):
    """Dunning closes a case on invoice.voided, but what it announced before it heard of the void can reach
    this service after it: the last failed retry (dunning.exhausted), or a retry scheduled just before."""
    async with EventBus(service_env.amqp_url) as bus:
        sub = await past_due(bus, client, admin_headers, test_clock, customer_id, user_headers)
        invoice_id = uuid.uuid4()
        await bus.publish(
            InvoiceVoided(invoice_id=invoice_id, customer_id=uuid.UUID(sub["customer_id"]),
                          subscription_id=uuid.UUID(sub["id"]), currency="USD", total=3000),
            occurred_at=datetime(2024, 7, 9, tzinfo=UTC),
        )
        await wait_for(lambda: status_of(client, sub, user_headers, "active"), message="active after the void")
        handled = handled_so_far("dunning.exhausted")
        stale = [
            (dunning_event(DunningRetryScheduled, sub, failures=2, invoice_id=invoice_id), datetime(2024, 7, 8, tzinfo=UTC)),
            (dunning_event(DunningExhausted, sub, failures=4, invoice_id=invoice_id), datetime(2024, 7, 9, 1, tzinfo=UTC)),
        ]
        for event, at in stale:
            await bus.publish(event, occurred_at=at)
        await wait_for(lambda: handled_since(handled, "dunning.exhausted"), message="the late dunning.exhausted")
    assert await status_of(client, sub, user_headers, "active")  # the debt it chased was voided


async def chase_two_invoices(bus, client, admin_headers, test_clock, customer_id, user_headers, cls, **facts):
    """A subscription of July 2024 and dunning's `cls` event about two of its invoices, on two days from `day`;
    returns once both are handled: (subscription, first invoice id, second invoice id)."""
    first, second, day = uuid.uuid4(), uuid.uuid4(), facts.pop("day")
    sub = await july_subscription(client, admin_headers, test_clock, customer_id, user_headers)
    handled = handled_so_far(cls.type)
    for n, invoice_id in enumerate((first, second)):
        await bus.publish(dunning_event(cls, sub, invoice_id=invoice_id, **facts),
                          occurred_at=datetime(2024, 7, day + n, tzinfo=UTC))
    await wait_for(lambda: handled_since(handled + 1, cls.type), message=f"both {cls.type}")
    return sub, first, second


async def test_a_past_due_subscription_is_active_again_only_once_every_chased_invoice_is_settled(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    """Two invoices chased at once (say a period's and an upgrade's): paying one leaves it past due; voiding the
    other, the last one owed, makes it active."""
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.reactivated")
        sub, first, second = await chase_two_invoices(
            bus, client, admin_headers, test_clock, customer_id, user_headers, DunningRetryScheduled, failures=1, day=2
        )
        await pay_period(bus, db, sub, 3000, datetime(2024, 7, 4, tzinfo=UTC), invoice_id=first)
        assert await status_of(client, sub, user_headers, "past_due")  # the second invoice is still owed
        await bus.publish(
            InvoiceVoided(invoice_id=second, customer_id=uuid.UUID(sub["customer_id"]),
                          subscription_id=uuid.UUID(sub["id"]), currency="USD", total=3000),
            occurred_at=datetime(2024, 7, 5, tzinfo=UTC),
        )
        (event,) = await events_for(bus, "subscription.reactivated", sub["id"])
    assert event.payload["at"] == "2024-07-05T00:00:00Z"
    assert await status_of(client, sub, user_headers, "active")


async def test_a_suspended_subscription_stays_suspended_until_the_last_exhausted_invoice_is_paid(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.suspended", "subscription.reactivated")
        sub, first, second = await chase_two_invoices(
            bus, client, admin_headers, test_clock, customer_id, user_headers, DunningExhausted, failures=4, day=20
        )
        await pay_period(bus, db, sub, 3000, datetime(2024, 7, 22, tzinfo=UTC), invoice_id=second)
        assert await status_of(client, sub, user_headers, "suspended")
        await pay_period(bus, db, sub, 3000, datetime(2024, 7, 23, tzinfo=UTC), invoice_id=first)
        (reactivated,) = await events_for(bus, "subscription.reactivated", sub["id"])
        suspended = await events_for(bus, "subscription.suspended", sub["id"])
    assert reactivated.payload["at"] == "2024-07-23T00:00:00Z"
    assert len(suspended) == 1  # the second exhausted case found it suspended already
    assert await status_of(client, sub, user_headers, "active")


async def test_exhausted_dunning_suspends_but_service_lasts_to_the_end_of_the_paid_period(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    sub = await july_subscription(client, admin_headers, test_clock, customer_id, user_headers)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.suspended", "subscription.reactivated", "subscription.renewed")
        await pay_period(bus, db, sub, 3000, datetime(2024, 7, 1, 1, tzinfo=UTC))
        await bill(client, admin_headers, "2024-08-01T00:00:00Z")  # period 1, never paid
        await bus.publish(dunning_event(DunningExhausted, sub, failures=4), occurred_at=datetime(2024, 8, 10, tzinfo=UTC))
        (suspended,) = await events_for(bus, "subscription.suspended", sub["id"])
        assert suspended.payload["service_ends_at"] == "2024-08-10T00:00:00Z"  # the paid July period is over
        summary = await bill(client, admin_headers, "2024-09-02T00:00:00Z")
        assert summary["skipped"] >= 1
        test_clock.set(2024, 9, 20)
        # Paying the overdue invoice reactivates; its period long over, billing restarts from the payment.
        await publish_late_payment(bus, sub, datetime(2024, 8, 1, tzinfo=UTC), datetime(2024, 9, 20, tzinfo=UTC))
        await events_for(bus, "subscription.reactivated", sub["id"])
        renewals = await events_for(bus, "subscription.renewed", sub["id"], count=2)
    assert [r.payload["period_start"] for r in renewals] == ["2024-08-01T00:00:00Z", "2024-09-20T00:00:00Z"]
    rows = await period_rows(db, sub["id"])
    assert [r.amount_paid for r in rows] == [3000, 3000, 0]


async def test_suspension_keeps_service_until_a_paid_period_ends(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    sub = await july_subscription(client, admin_headers, test_clock, customer_id, user_headers)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.suspended")
        await pay_period(bus, db, sub, 3000, datetime(2024, 7, 1, 1, tzinfo=UTC))
        # e.g. a failed upgrade charge: the July period itself was paid, so service runs to its end
        exhausted = dunning_event(DunningExhausted, sub, failures=4, invoice_id=uuid.uuid4())
        await bus.publish(exhausted, occurred_at=datetime(2024, 7, 20, tzinfo=UTC))
        (suspended,) = await events_for(bus, "subscription.suspended", sub["id"])
    assert suspended.payload["service_ends_at"] == "2024-08-01T00:00:00Z"
    # The suspension names what it was for: the customer's email about it is written from this event.
    assert (suspended.payload["invoice_id"], suspended.payload["amount"], suspended.payload["currency"]) == (
        str(exhausted.invoice_id), 3000, "USD"
    )
    after = (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()
    assert after["status"] == "suspended" and after["service_ends_at"] == "2024-08-01T00:00:00Z"


async def test_a_dunning_event_older_than_a_payment_is_ignored(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    sub = await july_subscription(client, admin_headers, test_clock, customer_id, user_headers)
    async with EventBus(service_env.amqp_url) as bus:
        await pay_period(bus, db, sub, 3000, datetime(2024, 7, 3, tzinfo=UTC))
        handled = handled_so_far("dunning.retry_scheduled")
        await bus.publish(dunning_event(DunningRetryScheduled, sub, failures=1), occurred_at=datetime(2024, 7, 2, tzinfo=UTC))
        await wait_for(
            lambda: handled_since(handled, "dunning.retry_scheduled"), message="the older dunning event to be handled"
        )
    assert await status_of(client, sub, user_headers, "active")


async def test_a_dunning_event_is_not_stale_for_a_payment_of_a_period_that_began_after_it(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    """A billing run that caught up two periods at once: August's charge failed, September's was paid. Dunning
    gives up on August's invoice (on Aug 10, in business time) after September's payment was recorded: that
    payment cannot be for the invoice dunning chased, so the subscription is suspended all the same."""
    sub = await july_subscription(client, admin_headers, test_clock, customer_id, user_headers)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.suspended")
        await pay_period(bus, db, sub, 3000, datetime(2024, 7, 1, 1, tzinfo=UTC))
        await bill(client, admin_headers, "2024-09-02T00:00:00Z")  # August and September
        await publish_late_payment(bus, sub, datetime(2024, 9, 1, tzinfo=UTC), datetime(2024, 9, 1, 1, tzinfo=UTC))

        async def september_paid() -> bool:
            return [r.amount_paid for r in await period_rows(db, sub["id"])] == [3000, 0, 3000]

        await wait_for(september_paid, message="September's payment recorded")
        await bus.publish(dunning_event(DunningExhausted, sub, failures=4, invoice_id=uuid.uuid4()),
                          occurred_at=datetime(2024, 8, 10, tzinfo=UTC))
        (suspended,) = await events_for(bus, "subscription.suspended", sub["id"])
    assert suspended.payload["at"] == "2024-08-10T00:00:00Z"
    assert await status_of(client, sub, user_headers, "suspended")


async def test_events_about_unknown_subscriptions_are_ignored(service_env, db):
    stranger = {"id": str(uuid.uuid4()), "customer_id": str(uuid.uuid4()), "current_period_start": "2024-07-01T00:00:00+00:00"}
    async with EventBus(service_env.amqp_url) as bus:
        await bus.publish(dunning_event(DunningExhausted, stranger, failures=4))
        envelope = await bus.publish(
            InvoicePaid(
                invoice_id=uuid.uuid4(), customer_id=uuid.uuid4(), subscription_id=uuid.UUID(stranger["id"]),
                currency="USD", total=1, amount_paid=1, paid_at=datetime(2024, 7, 1, tzinfo=UTC),
            )
        )

    async def handled():
        from sqlalchemy import text

        async with db.sessions() as session:
            return await session.scalar(text("SELECT 1 FROM inbox WHERE event_id = :id"), {"id": envelope.event_id})

    await wait_for(handled, message="the event to be handled (and ignored)")


async def test_a_suspended_subscription_that_was_to_cancel_at_period_end_ends_then_and_is_not_billed_again(
    client, admin_headers, service_env, db, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 7, 1)
    plan = await create_plan(client, admin_headers, amount=3000)
    ended_by_run = await subscribe(client, user_headers, customer_id, plan["id"])
    ended_by_payment = await subscribe(client, user_headers, customer_id, plan["id"])
    test_clock.set(2024, 7, 3)
    for sub in (ended_by_run, ended_by_payment):
        flagged = await client.post(f"/api/subscriptions/{sub['id']}/cancel", json={"at_period_end": True},
                                    headers=user_headers)
        assert flagged.status_code == 200, flagged.text
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.suspended", "subscription.canceled", "subscription.renewed",
                         "subscription.reactivated")
        for sub in (ended_by_run, ended_by_payment):
            await bus.publish(dunning_event(DunningExhausted, sub, failures=3), occurred_at=datetime(2024, 7, 10, tzinfo=UTC))
            await events_for(bus, "subscription.suspended", sub["id"])
        # A late payment before any run has ended it: it ends at its period end, no new period.
        await publish_late_payment(
            bus, ended_by_payment, datetime(2024, 7, 1, tzinfo=UTC), datetime(2024, 8, 20, tzinfo=UTC)
        )
        (by_payment,) = await events_for(bus, "subscription.canceled", ended_by_payment["id"])
        summary = await bill(client, admin_headers, "2024-09-15T00:00:00Z")
        (by_run,) = await events_for(bus, "subscription.canceled", ended_by_run["id"])

    assert summary["ended"] >= 1
    for event in (by_payment, by_run):
        assert event.payload["at_period_end"] is True and event.payload["credit_amount"] == 0
        assert event.payload["ends_at"] == "2024-08-01T00:00:00Z"
    for sub in (ended_by_run, ended_by_payment):
        read = (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json()
        assert (read["status"], read["ended_at"]) == ("canceled", "2024-08-01T00:00:00Z")
        assert len(await period_rows(db, sub["id"])) == 1  # no period after the canceled one
    mine = (ended_by_run["id"], ended_by_payment["id"])
    later = bus.of_type("subscription.renewed") + bus.of_type("subscription.reactivated")
    assert [e for e in later if e.payload["subscription_id"] in mine] == []
