"""Invoices settled or voided outside dunning end their case, credit notes lower what it retries for; the
wall-clock scheduler runs by itself."""

from __future__ import annotations

import uuid
from datetime import timedelta

from dunning_driver import Debt

from app.main import create_app
from app.settings import Settings
from billing_shared import clock
from billing_shared.contracts import (
    CreditNoteIssued,
    InvoicePaid,
    InvoicePartiallyPaid,
    InvoiceVoided,
    SubscriptionCanceled,
)
from billing_shared.testing import running, wait_for

DAY = timedelta(days=1)


async def test_an_invoice_paid_another_way_recovers_its_case(dunning, epoch):
    debt = Debt()
    await dunning.fail(debt, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]
    payment_id = uuid.uuid4()
    await dunning.bus.publish(
        InvoicePaid(
            invoice_id=debt.invoice_id, customer_id=debt.customer_id, currency="EUR", total=2500,
            amount_paid=2500, paid_at=epoch + DAY, payment_id=payment_id,
        ),
        occurred_at=epoch + DAY,
    )
    recovered = (await dunning.wait_event("dunning.recovered", debt))[0]
    assert recovered.payload["recovered_by_payment_id"] == str(payment_id)
    assert (await dunning.run(epoch + 10 * DAY))["retries_due"] == 0
    assert (await dunning.case(case_id))["status"] == "recovered"


async def test_a_credit_note_on_the_unpaid_invoice_lowers_what_the_next_retry_asks_for(dunning, epoch):
    debt = Debt(amount=2500)
    await dunning.fail(debt, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]
    await dunning.bus.publish(note_on(debt, amount=1500, amount_due=1000), occurred_at=epoch + DAY)
    await dunning.bus.publish(note_on(Debt(), amount=500, amount_due=2000), occurred_at=epoch + DAY)  # no case
    await next_retry_asks_for(dunning, debt, case_id, 1000, epoch + 2 * DAY)


async def test_a_partial_payment_by_hand_lowers_what_the_next_retry_asks_for(dunning, epoch):
    debt = Debt(amount=2500)
    await dunning.fail(debt, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]
    await dunning.bus.publish(
        InvoicePartiallyPaid(
            invoice_id=debt.invoice_id, customer_id=debt.customer_id, currency="EUR", total=2500,
            payment_id=uuid.uuid4(), amount_paid=1800, amount_due=700,
        ),
        occurred_at=epoch + DAY,
    )
    await next_retry_asks_for(dunning, debt, case_id, 700, epoch + 2 * DAY)


async def next_retry_asks_for(dunning, debt: Debt, case_id: str, amount: int, at) -> None:
    """The case is repriced to `amount`, and the retry the scheduler starts at `at` asks for exactly that."""

    async def repriced() -> bool:
        return (await dunning.case(case_id))["amount"] == amount

    await wait_for(repriced, message="the case to ask for what is still due")
    await dunning.run(at)
    [retry] = await dunning.wait_event("dunning.retry_due", debt)
    assert (retry.payload["amount"], retry.payload["currency"]) == (amount, "EUR")


def note_on(debt: Debt, *, amount: int, amount_due: int) -> CreditNoteIssued:
    return CreditNoteIssued(
        credit_note_id=uuid.uuid4(), number="CN-000001", invoice_id=debt.invoice_id, customer_id=debt.customer_id,
        amount=amount, currency=debt.currency, amount_due=amount_due,
    )


async def test_a_voided_invoice_cancels_its_case_without_further_retries(dunning, epoch):
    debt = Debt()
    await dunning.fail(debt, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]
    await dunning.bus.publish(
        InvoiceVoided(invoice_id=debt.invoice_id, customer_id=debt.customer_id, currency="EUR"),
        occurred_at=epoch + DAY,
    )

    async def canceled() -> bool:
        return (await dunning.case(case_id))["status"] == "canceled"

    await wait_for(canceled, message="case canceled")
    assert (await dunning.run(epoch + 10 * DAY))["retries_due"] == 0
    assert dunning.events("dunning.retry_due", debt) == []


async def test_a_canceled_subscription_is_no_longer_dunned(dunning, epoch):
    debt, other = Debt(), Debt()
    await dunning.fail(debt, epoch)
    await dunning.fail(other, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]
    other_id = (await dunning.wait_event("dunning.retry_scheduled", other))[0].payload["case_id"]
    await dunning.bus.publish(
        SubscriptionCanceled(
            subscription_id=debt.subscription_id, customer_id=debt.customer_id, canceled_at=epoch + DAY,
            at_period_end=False, ends_at=epoch + DAY, currency="EUR",
        ),
        occurred_at=epoch + DAY,
    )

    async def canceled() -> bool:
        return (await dunning.case(case_id))["status"] == "canceled"

    await wait_for(canceled, message="case canceled")
    assert (await dunning.run(epoch + 10 * DAY))["retries_due"] == 1  # the other subscription's case only
    assert dunning.events("dunning.retry_due", debt) == []
    assert (await dunning.case(other_id))["status"] == "open"


async def test_an_admin_can_cancel_a_case_and_a_user_cannot(dunning, client, service_env, epoch):
    debt = Debt()
    await dunning.fail(debt, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]
    as_owner = await client.post(f"/api/dunning/cases/{case_id}/cancel", headers=service_env.auth(debt.customer_id))
    assert as_owner.status_code == 403
    as_admin = await client.post(f"/api/dunning/cases/{case_id}/cancel", headers=dunning.admin)
    assert as_admin.status_code == 200
    assert (as_admin.json()["status"], as_admin.json()["next_retry_at"]) == ("canceled", None)


async def test_the_periodic_scheduler_sends_retries_due_by_the_wall_clock(dunning, service_env):
    debt = Debt()
    failed_at = clock.now() - 3 * DAY  # its first retry was due a day ago
    await dunning.fail(debt, failed_at)
    await dunning.wait_event("dunning.retry_scheduled", debt)

    replica = create_app(
        Settings(dunning_retry_days="2,3", run_consumer=False, run_scheduler=True, dunning_scheduler_interval_s=0.05)
    )
    async with running(replica):
        retry = (await dunning.wait_event("dunning.retry_due", debt))[0]
    assert retry.occurred_at == failed_at + 2 * DAY
