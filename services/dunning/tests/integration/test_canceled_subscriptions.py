"""A subscription's subscription.canceled may reach dunning before the payment.failed of its invoice (events of
two services come in any order): the failure's case then opens canceled, so nothing is retried, charged or
announced, whatever the order, the redeliveries, or two transactions handling both at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from dunning_driver import Debt
from sqlalchemy import select, text

from app.handlers import payments, subscriptions
from billing_shared.contracts import PaymentFailed, SubscriptionCanceled
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope, Event
from billing_shared.plumbing_tables import outbox_table
from billing_shared.testing import events_handled, wait_for

DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def handled_at_least(event_type: str, count: float, *outcomes: str) -> None:
    async def enough() -> bool:
        return events_handled("dunning", event_type, *outcomes) >= count

    await wait_for(enough, message=f"{count:.0f} {event_type} deliveries {outcomes or ('handled',)}")


async def announced(app, case_id: str) -> list[str]:
    """Every event dunning wrote to its outbox about this case (its routing keys)."""
    outbox = outbox_table("dunning")
    async with app.state.runtime.db.sessions() as session:
        rows = await session.scalars(
            select(outbox.c.routing_key).where(outbox.c.body["payload"]["case_id"].astext == case_id)
        )
        return list(rows)


async def the_case(dunning, debt: Debt) -> dict:
    """The debt's one case, with its attempts, once its failure has been handled."""

    async def listed() -> list[dict]:
        return await dunning.cases_of(debt)

    [case] = await wait_for(listed, message="the debt's case")
    return await dunning.case(case["id"])


@pytest.mark.parametrize("at_period_end", [False, True], ids=["canceled_now", "canceled_at_period_end"])
async def test_a_failure_reported_after_its_subscription_was_canceled_is_never_retried(
    app, dunning, epoch, at_period_end
):
    debt = Debt()
    ended_at = epoch + (30 * DAY if at_period_end else MINUTE)  # right after subscribing, or at the period's end
    cancels_before = events_handled("dunning", "subscription.canceled")
    await dunning.cancel_subscription(debt, ended_at, at_period_end=at_period_end)
    await handled_at_least("subscription.canceled", cancels_before + 1)

    await dunning.fail(debt, epoch)  # the first invoice's payment failed before the cancellation took effect
    case = await the_case(dunning, debt)
    assert (case["status"], case["failures"], case["next_retry_at"], case["waiting_for_payment_method"]) == (
        "canceled", 1, None, False
    )
    # As if the cancellation had come after the failure: opened when it failed, closed when the subscription ended.
    assert (moment(case["opened_at"]), moment(case["closed_at"])) == (epoch, ended_at)
    assert [(a["attempt"], a["trigger"], a["outcome"]) for a in case["attempts"]] == [(1, "initial", "failed")]

    cards_before = events_handled("dunning", "payment_method.added")
    await dunning.add_card(debt, ended_at + DAY)  # a new card retries open cases only
    await handled_at_least("payment_method.added", cards_before + 1)
    run = await dunning.run(ended_at + 30 * DAY)
    assert (run["retries_due"], run["exhausted"]) == (0, 0)
    # Nothing announced: no retry to charge, no "payment failed, next try on ..." email, no suspension.
    assert await announced(app, case["id"]) == []
    assert (await dunning.case(case["id"]))["attempts"] == case["attempts"]


async def test_a_customer_who_canceled_and_subscribed_again_is_dunned_for_the_new_subscription(dunning, epoch):
    canceled = Debt()
    renewed = Debt(customer_id=canceled.customer_id)  # a new subscription, under a new id
    cancels_before = events_handled("dunning", "subscription.canceled")
    await dunning.cancel_subscription(canceled, epoch)
    await handled_at_least("subscription.canceled", cancels_before + 1)

    await dunning.fail(renewed, epoch + DAY)
    [scheduled] = await dunning.wait_event("dunning.retry_scheduled", renewed)
    assert moment(scheduled.payload["next_retry_at"]) == epoch + 3 * DAY
    assert (await dunning.run(epoch + 3 * DAY))["retries_due"] == 1
    [retry] = await dunning.wait_event("dunning.retry_due", renewed)
    assert retry.payload["subscription_id"] == str(renewed.subscription_id)


async def test_redelivered_cancellations_and_failures_leave_one_canceled_case(app, dunning, epoch):
    debt = Debt()
    cancel_id, failure_id = uuid.uuid4(), uuid.uuid4()
    cancels_before = events_handled("dunning", "subscription.canceled", "handled", "duplicate")
    for _ in range(2):
        await dunning.cancel_subscription(debt, epoch + MINUTE, event_id=cancel_id)
    # The same cancellation announced again under another event id: the first one's time stays.
    await dunning.cancel_subscription(debt, epoch + 2 * MINUTE)
    await handled_at_least("subscription.canceled", cancels_before + 3, "handled", "duplicate")

    failures_before = events_handled("dunning", "payment.failed", "handled", "duplicate")
    for _ in range(3):
        await dunning.fail(debt, epoch, event_id=failure_id)
    await dunning.fail(debt, epoch + 5 * MINUTE)  # the same failure reported again under a new event id
    await handled_at_least("payment.failed", failures_before + 4, "handled", "duplicate")

    [listed] = await dunning.cases_of(debt)
    case = await dunning.case(listed["id"])
    assert (case["status"], case["failures"], moment(case["closed_at"])) == ("canceled", 1, epoch + MINUTE)
    assert len(case["attempts"]) == 1
    assert (await dunning.run(epoch + 30 * DAY))["retries_due"] == 0
    assert await announced(app, case["id"]) == []


def envelope(event: Event, occurred_at: datetime) -> Envelope:
    return Envelope(type=event.type, payload=event.model_dump(mode="json"), producer="test", occurred_at=occurred_at)


@pytest.mark.parametrize("first", ["cancellation", "failure"])
async def test_a_cancellation_and_a_first_failure_handled_at_once_leave_nothing_to_chase(app, dunning, epoch, first):
    """Two consumers (replicas, or concurrent batches) each in a transaction that cannot see the other's rows."""
    debt = Debt()
    db = app.state.runtime.db
    canceled = SubscriptionCanceled(
        subscription_id=debt.subscription_id, customer_id=debt.customer_id, canceled_at=epoch + MINUTE,
        at_period_end=False, ends_at=epoch + MINUTE, currency=debt.currency,
    )
    failed = PaymentFailed(**debt.facts(), payment_id=debt.payment_id, failure_code="card_declined")
    handle_failure = payments.payment_failed_handler(app.state.settings.retry_schedule)

    async def cancellation(uow: UnitOfWork) -> None:
        await subscriptions.handle_subscription_canceled(envelope(canceled, epoch + MINUTE), uow)

    async def failure(uow: UnitOfWork) -> None:
        await handle_failure(envelope(failed, epoch), uow)

    first_handler, second_handler = (cancellation, failure) if first == "cancellation" else (failure, cancellation)

    async def in_own_transaction(handler: Callable[[UnitOfWork], Awaitable[None]]) -> None:
        async with db.uow() as uow:
            await handler(uow)
            await uow.commit()

    async with db.uow() as uow:
        await first_handler(uow)  # done, not committed
        second = asyncio.create_task(in_own_transaction(second_handler))

        async def second_done_or_waiting() -> bool:
            async with db.reads() as session:
                waiting = await session.scalar(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                )
            return second.done() or waiting > 0

        await wait_for(second_done_or_waiting, message="the second transaction done or waiting for the first")
        await uow.commit()
    await second

    case = await the_case(dunning, debt)
    assert (case["status"], case["failures"], case["next_retry_at"]) == ("canceled", 1, None)
    assert (await dunning.run(epoch + 30 * DAY))["retries_due"] == 0
    assert "dunning.retry_due" not in await announced(app, case["id"])
