"""Subscription, payment and dunning facts turn into invoices: once per period, finalized, paid, written off."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

from app.settings import Settings
from billing_shared.contracts import CustomerUpdated, DunningExhausted, PaymentSucceeded
from billing_shared.testing import events_handled, wait_for

from conftest import START, plan_change


async def test_subscription_created_opens_one_finalized_numbered_invoice(billing):
    customer_id = await billing.customer("Grace Hopper")
    event, invoice = await billing.subscribe(customer_id=customer_id)

    assert invoice["status"] == "open"
    assert re.fullmatch(r"INV-\d{6}", invoice["number"])
    assert (invoice["subtotal"], invoice["total"], invoice["amount_paid"], invoice["amount_due"]) == (4999, 4999, 0, 4999)
    assert invoice["currency"] == "USD"
    assert invoice["customer_name"] == "Grace Hopper"
    assert invoice["period"] == {"start": "2027-01-01T00:00:00Z", "end": "2027-02-01T00:00:00Z"}
    assert datetime.fromisoformat(invoice["due_at"]) == START + timedelta(days=7)
    [line] = invoice["lines"]
    assert (line["description"], line["amount"], line["kind"]) == ("Pro (per month)", 4999, "subscription")

    finalized = await billing.event_for("invoice.finalized", invoice["id"])
    assert finalized.payload["number"] == invoice["number"]
    assert finalized.payload["amount_due"] == 4999 and finalized.payload["total"] == 4999
    assert finalized.payload["subscription_id"] == str(event.subscription_id)
    assert finalized.payload["payment_method_id"] == str(event.payment_method_id)
    assert datetime.fromisoformat(finalized.payload["due_at"]) == START + timedelta(days=7)
    assert finalized.payload["hosted_invoice_url"].startswith(f"http://localhost:8080/invoices/{invoice['id']}?sig=")
    assert finalized.occurred_at == START


async def test_a_subscription_heard_of_before_its_customer_is_invoiced_with_the_bill_to_once_the_customer_is_known(
    billing, db
):
    customer_id = uuid.uuid4()
    event = billing.period_event(customer_id=customer_id)
    tries = events_handled("invoice", "subscription.created", "failed")
    await billing.publish(event, at=START)
    dead_lettered_after = Settings().delivery_limit + 1  # tries of an event that fails for good

    async def tried() -> bool:
        return events_handled("invoice", "subscription.created", "failed") > tries + dead_lettered_after + 1

    await wait_for(tried, message="subscription.created tried, waiting for its customer, beyond its tries")
    # Nothing issued meanwhile: no invoice without a bill-to, and no number taken from the gapless series.
    assert await billing.scalar("SELECT count(*) FROM invoices WHERE subscription_id = :id",
                                id=event.subscription_id) == 0

    await billing.customer("Grace Hopper", customer_id=customer_id)
    [invoice] = await billing.invoices_of(event.subscription_id)
    assert (invoice["status"], invoice["customer_name"]) == ("open", "Grace Hopper")
    assert re.fullmatch(r"INV-\d{6}", invoice["number"])


async def test_a_period_invoice_gets_the_id_its_subscription_event_chose_once_however_often_it_is_heard(billing):
    chosen = uuid.uuid4()
    created, invoice = await billing.subscribe(invoice_id=chosen)
    replay = await billing.publish(created, at=START)  # the same fact again, under another event id
    await billing.handled(replay)

    assert invoice["id"] == str(chosen)
    assert [i["id"] for i in await billing.invoices_of(created.subscription_id)] == [str(chosen)]


async def test_renewed_delivered_three_times_and_replayed_makes_one_invoice(billing):
    created, _ = await billing.subscribe()
    renewed = billing.renewal(created)
    event_id = uuid.uuid4()
    for _ in range(3):
        await billing.publish(renewed, event_id=event_id, at=renewed.period_start)
    # The same fact again under another event id (a producer replay): still one invoice for the period.
    replay = await billing.publish(renewed, at=renewed.period_start)
    await billing.handled(replay)

    invoices = await billing.invoices_of(created.subscription_id, count=2)
    assert len(invoices) == 2
    renewal_invoices = [i for i in invoices if i["period"]["start"] == "2027-02-01T00:00:00Z"]
    assert len(renewal_invoices) == 1
    assert renewal_invoices[0]["billing_reason"] == "subscription_cycle"
    assert len(billing.events_for("invoice.finalized", renewal_invoices[0]["id"])) == 1


async def test_trial_period_invoice_is_zero_and_paid_at_once_without_a_payment(billing):
    _, invoice = await billing.subscribe(status="trialing", trial_end=START + timedelta(days=14))
    invoice = await billing.invoice_when(invoice["id"], lambda i: i["status"] == "paid")

    assert (invoice["total"], invoice["amount_due"], invoice["payment_id"]) == (0, 0, None)
    assert invoice["lines"][0]["description"] == "Pro (free trial)"
    paid = await billing.event_for("invoice.paid", invoice["id"])
    assert paid.payload["amount_paid"] == 0 and paid.payload["payment_id"] is None


async def test_payment_succeeded_pays_the_invoice_once_and_announces_it(billing):
    _, invoice = await billing.subscribe()
    payment = await billing.pay(invoice, at=START + timedelta(hours=2))
    paid = await billing.invoice_when(invoice["id"], lambda i: i["status"] == "paid")

    assert (paid["amount_paid"], paid["amount_due"], paid["payment_id"]) == (4999, 0, str(payment.payment_id))
    assert datetime.fromisoformat(paid["paid_at"]) == START + timedelta(hours=2)
    announced = await billing.event_for("invoice.paid", invoice["id"])
    assert announced.payload["payment_id"] == str(payment.payment_id)
    assert announced.payload["amount_paid"] == 4999

    again = await billing.publish(payment, at=START + timedelta(hours=3))  # same payment, another event id
    await billing.handled(again)
    assert (await billing.invoice(invoice["id"]))["amount_paid"] == 4999
    assert len(billing.events_for("invoice.paid", invoice["id"])) == 1


async def test_another_customers_payment_does_not_settle_the_invoice(billing):
    _, invoice = await billing.subscribe()
    failed = events_handled("invoice", "payment.succeeded", "failed")
    await billing.publish(PaymentSucceeded(
        payment_id=uuid.uuid4(), customer_id=uuid.uuid4(), amount=invoice["amount_due"], currency=invoice["currency"],
        invoice_id=invoice["id"],
    ))

    async def refused() -> bool:
        return events_handled("invoice", "payment.succeeded", "failed") > failed

    await wait_for(refused, message="the payment refused (and dead-lettered for an operator)")
    after = await billing.invoice(invoice["id"])
    assert (after["status"], after["amount_paid"], after["amount_due"]) == ("open", 0, 4999)
    assert billing.events_for("invoice.paid", invoice["id"]) == []


async def test_a_partial_payment_leaves_the_invoice_open_with_the_rest_due(billing):
    _, invoice = await billing.subscribe()
    await billing.pay(invoice, amount=1000)
    partly = await billing.invoice_when(invoice["id"], lambda i: i["amount_paid"] == 1000)

    assert (partly["status"], partly["amount_due"]) == ("open", 3999)
    announced = await billing.event_for("invoice.partially_paid", invoice["id"])
    assert (announced.payload["amount_paid"], announced.payload["amount_due"]) == (1000, 3999)


async def test_a_payment_beyond_what_is_due_pays_the_invoice_and_gives_the_rest_back(billing):
    _, invoice = await billing.subscribe()
    await billing.pay(invoice, amount=1000)
    await billing.invoice_when(invoice["id"], lambda i: i["amount_paid"] == 1000)
    second = await billing.pay(invoice, amount=4999)  # the full amount, charged while the first was in flight
    paid = await billing.invoice_when(invoice["id"], lambda i: i["status"] == "paid")

    assert (paid["amount_paid"], paid["amount_refunded"], paid["amount_due"]) == (5999, 1000, 0)
    announced = await billing.event_for("invoice.paid", invoice["id"])
    assert announced.payload["amount_paid"] == 4999  # what the invoice keeps: the subscription's period was paid that
    overpaid = await billing.event_for("invoice.overpaid", invoice["id"])
    assert overpaid.payload["payment_id"] == str(second.payment_id)
    assert (overpaid.payload["amount"], overpaid.payload["currency"]) == (1000, "USD")
    assert overpaid.payload["invoice_status"] == "paid"


async def test_an_invoice_paid_twice_gives_the_second_payment_back_once(billing):
    _, invoice = await billing.subscribe()
    await billing.pay(invoice)
    await billing.invoice_when(invoice["id"], lambda i: i["status"] == "paid")
    twice = await billing.pay(invoice, amount=4999)
    await billing.pay(invoice, amount=4999, payment_id=twice.payment_id)  # the same payment delivered again
    overpaid = await billing.event_for("invoice.overpaid", invoice["id"])

    assert (overpaid.payload["payment_id"], overpaid.payload["amount"]) == (str(twice.payment_id), 4999)
    after = await billing.invoice(invoice["id"])
    assert (after["amount_paid"], after["amount_refunded"], after["amount_due"]) == (9998, 4999, 0)
    assert len(billing.events_for("invoice.overpaid", invoice["id"])) == 1
    assert len(billing.events_for("invoice.paid", invoice["id"])) == 1


async def test_money_for_a_voided_invoice_is_given_back(billing, client, admin_headers):
    _, invoice = await billing.subscribe()
    assert (await client.post(f"/api/invoices/{invoice['id']}/void", headers=admin_headers)).status_code == 200
    late = await billing.pay(invoice, amount=4999)  # a charge that was in flight when the invoice was voided
    overpaid = await billing.event_for("invoice.overpaid", invoice["id"])

    assert (overpaid.payload["payment_id"], overpaid.payload["amount"]) == (str(late.payment_id), 4999)
    assert overpaid.payload["invoice_status"] == "void"
    after = await billing.invoice(invoice["id"])
    assert (after["status"], after["amount_paid"], after["amount_refunded"]) == ("void", 4999, 4999)


async def test_dunning_exhausted_marks_the_invoice_uncollectible(billing):
    _, invoice = await billing.subscribe()
    await billing.publish(
        DunningExhausted(
            case_id=uuid.uuid4(), customer_id=invoice["customer_id"], invoice_id=invoice["id"],
            amount=4999, currency="USD", failures=4,
        ),
        at=START + timedelta(days=9),
    )
    written_off = await billing.invoice_when(invoice["id"], lambda i: i["status"] == "uncollectible")

    assert written_off["amount_due"] == 4999
    announced = await billing.event_for("invoice.uncollectible", invoice["id"])
    assert announced.payload["amount_due"] == 4999


async def test_plan_change_with_a_net_charge_is_invoiced_with_its_proration_lines(billing):
    created, first = await billing.subscribe()
    at = START + timedelta(days=10)
    await billing.publish(plan_change(created, at, "Team", -3387, 6774), at=at)
    invoices = await billing.invoices_of(created.subscription_id, count=2)
    [upgrade] = [i for i in invoices if i["id"] != first["id"]]

    assert (upgrade["kind"], upgrade["billing_reason"]) == ("plan_change", "subscription_update")
    assert [(line["amount"], line["kind"]) for line in upgrade["lines"]] == [(-3387, "proration"), (6774, "proration")]
    assert (upgrade["total"], upgrade["amount_due"]) == (3387, 3387)
    finalized = await billing.event_for("invoice.finalized", upgrade["id"])
    assert finalized.payload["payment_method_id"] == str(created.payment_method_id)


async def test_two_plan_changes_at_the_same_instant_are_two_invoices_each_billed_once(billing):
    created, first = await billing.subscribe()
    at = START + timedelta(days=10)
    up = plan_change(created, at, "Team", -3387, 6774, change_id=uuid.uuid4())
    again = plan_change(created, at, "Max", -6774, 9000, change_id=uuid.uuid4())  # an admin's same proration_date
    published = [await billing.publish(event, at=at) for event in (up, again, up, again)]  # each delivered twice
    for envelope in published:
        await billing.handled(envelope)
    invoices = await billing.invoices_of(created.subscription_id, count=3)

    assert sorted(i["total"] for i in invoices if i["id"] != first["id"]) == [2226, 3387]
    assert len(invoices) == 3


async def test_customer_projection_keeps_the_newest_fact_whatever_the_order(billing):
    customer_id = await billing.customer("Old Name")
    newer = await billing.publish(
        CustomerUpdated(customer_id=customer_id, email="new@example.com", name="New Name"), at=START
    )
    older = await billing.publish(
        CustomerUpdated(customer_id=customer_id, email="stale@example.com", name="Stale"), at=START - timedelta(hours=1)
    )
    await billing.handled(newer)
    await billing.handled(older)

    assert await billing.scalar("SELECT name FROM customers WHERE id = :id", id=customer_id) == "New Name"
