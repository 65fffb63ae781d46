"""Credits for unused time become numbered credit notes on the period's invoices, refunded if they were paid.

The first test here issues the session's first credit note, so it is CN-000001 (no other file issues any).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from billing_shared.contracts import ProrationLine, SubscriptionCanceled
from billing_shared.testing import wait_for

from conftest import START, plan_change


def cancellation(created, credit: int, days_in: int = 10, **fields) -> SubscriptionCanceled:
    at = START + timedelta(days=days_in)
    values = dict(
        subscription_id=created.subscription_id, customer_id=created.customer_id, canceled_at=at,
        at_period_end=False, ends_at=at, period_start=created.period_start, period_end=created.period_end,
        credit_amount=credit, currency="USD",
    )
    return SubscriptionCanceled(**(values | fields))


async def test_cancel_with_credit_on_a_paid_invoice_issues_cn_000001_with_a_refund(billing, client, admin_headers):
    created, invoice = await billing.subscribe()
    payment = await billing.pay(invoice)
    await billing.invoice_when(invoice["id"], lambda i: i["status"] == "paid")

    await billing.publish(cancellation(created, credit=3387), at=START + timedelta(days=10))
    issued = await billing.event_for("credit_note.issued", invoice["id"])

    assert issued.payload["number"] == "CN-000001"
    assert issued.payload["amount"] == 3387 and issued.payload["currency"] == "USD"
    assert issued.payload["refund_due"] is True and issued.payload["refund_amount"] == 3387
    assert issued.payload["payment_id"] == str(payment.payment_id)
    assert issued.payload["reason"] == "cancellation"
    assert issued.payload["amount_due"] == 0
    after = await billing.invoice(invoice["id"])
    assert (after["status"], after["amount_paid"], after["amount_credited"], after["amount_due"]) == ("paid", 4999, 3387, 0)
    assert [note["number"] for note in after["credit_notes"]] == ["CN-000001"]

    listed = await client.get("/api/credit_notes", params={"invoice_id": invoice["id"]}, headers=admin_headers)
    assert [note["id"] for note in listed.json()["data"]] == [issued.payload["credit_note_id"]]
    read = await client.get(f"/api/credit_notes/{issued.payload['credit_note_id']}", headers=admin_headers)
    assert read.status_code == 200 and read.json()["refund_amount"] == 3387


async def test_the_same_cancellation_twice_credits_once(billing):
    created, invoice = await billing.subscribe()
    await billing.pay(invoice)
    await billing.invoice_when(invoice["id"], lambda i: i["status"] == "paid")
    first = await billing.publish(cancellation(created, credit=1000))
    second = await billing.publish(cancellation(created, credit=1000))
    await billing.handled(first)
    await billing.handled(second)

    assert (await billing.invoice(invoice["id"]))["amount_credited"] == 1000
    assert len(billing.events_for("credit_note.issued", invoice["id"])) == 1


async def test_a_cancel_after_a_billing_run_ahead_credits_each_period_on_its_own_invoices_once(billing):
    created, first = await billing.subscribe()
    await billing.pay(first)
    renewed = billing.renewal(created)
    await billing.publish(renewed, at=renewed.period_start - timedelta(days=3))  # billed three days ahead
    [second] = [i for i in await billing.invoices_of(created.subscription_id, count=2) if i["id"] != first["id"]]
    await billing.pay(second)
    await billing.invoice_when(second["id"], lambda i: i["status"] == "paid")
    canceled_at = renewed.period_start - timedelta(days=2)
    event = cancellation(
        created, credit=300 + 4999, canceled_at=canceled_at, ends_at=canceled_at,
        lines=[
            ProrationLine(description="Unused time: 2 of 30 days of Pro", amount=-300, currency="USD",
                          period_start=created.period_start, period_end=created.period_end),
            ProrationLine(description="Unused time: 30 of 30 days of Pro", amount=-4999, currency="USD",
                          period_start=renewed.period_start, period_end=renewed.period_end),
        ],
    )
    envelopes = [await billing.publish(event, at=canceled_at) for _ in range(2)]  # the second: a replay
    for envelope in envelopes:
        await billing.handled(envelope)

    assert (await billing.invoice(first["id"]))["amount_credited"] == 300
    assert (await billing.invoice(second["id"]))["amount_credited"] == 4999
    [on_first] = billing.events_for("credit_note.issued", first["id"])
    [on_second] = billing.events_for("credit_note.issued", second["id"])
    assert (on_first.payload["refund_amount"], on_second.payload["refund_amount"]) == (300, 4999)


async def test_a_credit_never_refunds_more_than_was_paid(billing):
    created, invoice = await billing.subscribe()
    await billing.pay(invoice)
    await billing.invoice_when(invoice["id"], lambda i: i["status"] == "paid")
    await billing.publish(cancellation(created, credit=999_999))
    issued = await billing.event_for("credit_note.issued", invoice["id"])

    assert issued.payload["amount"] == 4999 and issued.payload["refund_amount"] == 4999


async def test_a_credit_on_an_unpaid_invoice_lowers_the_amount_due_without_a_refund(billing, client, service_env):
    created, invoice = await billing.subscribe()
    await billing.publish(cancellation(created, credit=1999))
    issued = await billing.event_for("credit_note.issued", invoice["id"])

    assert issued.payload["refund_due"] is False and issued.payload["refund_amount"] == 0
    assert issued.payload["payment_id"] is None
    assert issued.payload["amount_due"] == 3000  # what dunning retries for from now on
    after = await billing.invoice(invoice["id"])
    assert (after["status"], after["amount_due"]) == ("open", 3000)
    note_url = f"/api/credit_notes/{issued.payload['credit_note_id']}"
    assert (await client.get(note_url, headers=service_env.auth(invoice["customer_id"]))).status_code == 200
    assert (await client.get(note_url, headers=service_env.auth(uuid.uuid4()))).status_code == 404
    page = await client.get(f"/invoices/{invoice['id']}", headers=service_env.auth(invoice["customer_id"]))
    summary = page.text[page.text.index('class="summary"'):]
    assert "Credited" in summary and "-$19.99" in summary and "$30.00" in summary  # 49.99 - 19.99 = 30.00 due


async def test_an_unpaid_invoice_credited_in_full_is_voided(billing):
    created, invoice = await billing.subscribe()
    await billing.publish(cancellation(created, credit=4999, days_in=0))
    await billing.event_for("credit_note.issued", invoice["id"])
    voided = await billing.event_for("invoice.voided", invoice["id"])

    assert voided.payload["number"] == invoice["number"]
    after = await billing.invoice(invoice["id"])
    assert (after["status"], after["amount_due"]) == ("void", 0)


async def test_a_plan_change_with_a_net_credit_is_a_credit_note_on_the_period_invoice(billing):
    created, invoice = await billing.subscribe()
    await billing.pay(invoice)
    await billing.invoice_when(invoice["id"], lambda i: i["status"] == "paid")
    at = START + timedelta(days=10)
    await billing.publish(plan_change(created, at, "Basic", -3387, 677), at=at)
    issued = await billing.event_for("credit_note.issued", invoice["id"])

    assert (issued.payload["amount"], issued.payload["refund_amount"], issued.payload["reason"]) == (2710, 2710, "plan_change")
    assert len(await billing.invoices_of(created.subscription_id)) == 1  # no invoice for a net credit


async def test_two_net_credit_plan_changes_at_the_same_instant_are_two_credit_notes(billing):
    created, invoice = await billing.subscribe()
    await billing.pay(invoice)
    await billing.invoice_when(invoice["id"], lambda i: i["status"] == "paid")
    at = START + timedelta(days=10)
    down = plan_change(created, at, "Basic", -3387, 677, change_id=uuid.uuid4())
    lower = plan_change(created, at, "Free", -677, 0, change_id=uuid.uuid4())
    for envelope in [await billing.publish(event, at=at) for event in (down, lower, down)]:
        await billing.handled(envelope)

    notes = billing.events_for("credit_note.issued", invoice["id"])
    assert sorted(note.payload["amount"] for note in notes) == [677, 2710]


async def _upgraded(billing, *, change_paid: bool):
    created, invoice = await billing.subscribe()
    await billing.pay(invoice)
    await billing.invoice_when(invoice["id"], lambda i: i["status"] == "paid")
    at = START + timedelta(days=10)  # day 10 of 30 on a 4999 plan, to a 9999 one: a 3333 net charge
    await billing.publish(plan_change(created, at, "Max", -3333, 6666), at=at)
    _, change = await billing.invoices_of(created.subscription_id, count=2)
    assert (change["kind"], change["total"]) == ("plan_change", 3333)
    if change_paid:
        await billing.pay(change)
        await billing.invoice_when(change["id"], lambda i: i["status"] == "paid")
    return created, invoice, change


async def test_a_cancel_after_an_upgrade_credits_the_plan_change_invoice_first_then_the_periods(billing):
    created, invoice, change = await _upgraded(billing, change_paid=True)
    # 20 days left of Max, less what rounding keeps: more than the period invoice alone could take.
    canceled = cancellation(created, credit=6000, days_in=10)
    await billing.publish(canceled)
    on_change = await billing.event_for("credit_note.issued", change["id"])
    on_period = await billing.event_for("credit_note.issued", invoice["id"])

    assert (on_change.payload["amount"], on_change.payload["refund_amount"]) == (3333, 3333)
    assert (on_period.payload["amount"], on_period.payload["refund_amount"]) == (2667, 2667)
    replayed = await billing.publish(canceled)  # the same fact again, under another event id
    await billing.handled(replayed)
    assert len(billing.events_for("credit_note.issued", change["id"])) == 1
    assert len(billing.events_for("credit_note.issued", invoice["id"])) == 1


async def test_a_cancel_after_an_unpaid_upgrade_lowers_its_invoice_before_refunding_the_period(billing):
    created, invoice, change = await _upgraded(billing, change_paid=False)
    await billing.publish(cancellation(created, credit=4000, days_in=10))
    on_change = await billing.event_for("credit_note.issued", change["id"])
    on_period = await billing.event_for("credit_note.issued", invoice["id"])

    assert (on_change.payload["amount"], on_change.payload["refund_amount"]) == (3333, 0)
    assert (await billing.invoice(change["id"]))["status"] == "void"  # nothing left to chase
    assert (on_period.payload["amount"], on_period.payload["refund_amount"]) == (667, 667)


async def test_a_plan_changes_late_credits_are_each_a_credit_note_on_the_newest_invoice(billing):
    created, _ = await billing.subscribe()
    at = START + timedelta(days=10)
    await billing.publish(plan_change(created, at, "Max", 0, 6666), at=at)  # nothing paid yet: nothing credited
    _, change = await billing.invoices_of(created.subscription_id, count=2)
    owed = plan_change(created, at + timedelta(days=1), "Max", -3333, 0)
    late = owed.model_copy(update={"correction": True, "lines": owed.lines[:1]})  # the one credit line
    await billing.publish(late)  # the period's payment arrived: the old plan's unused days are owed
    await billing.publish(late)  # and another payment's correction, with the same figures

    async def two_notes() -> list | None:
        notes = billing.events_for("credit_note.issued", change["id"])
        return notes if len(notes) >= 2 else None

    notes = await wait_for(two_notes, message="a credit note per correction")
    assert [(n.payload["amount"], n.payload["refund_amount"]) for n in notes] == [(3333, 0), (3333, 0)]
    assert (await billing.invoice(change["id"]))["amount_due"] == 0


async def test_a_late_plan_change_credit_lowers_the_unpaid_period_invoice_before_refunding_the_paid_change(billing):
    created, invoice = await billing.subscribe()  # the period's charge failed: its invoice stays open
    at = START + timedelta(days=10)
    await billing.publish(plan_change(created, at, "Max", 0, 6666), at=at)  # nothing paid yet: nothing credited
    _, change = await billing.invoices_of(created.subscription_id, count=2)
    await billing.pay(change)
    await billing.invoice_when(change["id"], lambda i: i["status"] == "paid")
    owed = plan_change(created, at + timedelta(days=1), "Max", -3333, 0)  # released by the change's payment
    await billing.publish(owed.model_copy(update={"correction": True, "lines": owed.lines[:1]}))

    note = await billing.event_for("credit_note.issued", invoice["id"])
    assert (note.payload["amount"], note.payload["refund_amount"]) == (3333, 0)
    assert (await billing.invoice(invoice["id"]))["amount_due"] == 4999 - 3333
    assert billing.events_for("credit_note.issued", change["id"]) == []  # nothing refunded from the change


async def test_a_cancel_refunds_the_latest_plans_paid_invoice_even_while_the_period_invoice_is_unpaid(billing):
    # A cancel credits the latest plan's unused days: what its invoice was paid goes back. (A plan change's credit
    # is for the old plan's days: it lowers the period invoice first, as the test above shows.)
    created, invoice = await billing.subscribe()  # the period's charge failed: its invoice stays open
    at = START + timedelta(days=10)
    await billing.publish(plan_change(created, at, "Max", 0, 6666), at=at)
    _, change = await billing.invoices_of(created.subscription_id, count=2)
    await billing.pay(change)
    await billing.invoice_when(change["id"], lambda i: i["status"] == "paid")
    await billing.publish(cancellation(created, credit=3000, days_in=10))

    note = await billing.event_for("credit_note.issued", change["id"])
    assert (note.payload["amount"], note.payload["refund_amount"]) == (3000, 3000)
    assert billing.events_for("credit_note.issued", invoice["id"]) == []
    assert (await billing.invoice(invoice["id"]))["amount_due"] == 4999


async def test_a_credit_settling_a_partly_paid_invoice_refunds_from_the_payment_received(billing):
    created, invoice = await billing.subscribe()
    partial = await billing.pay(invoice, amount=400)
    await billing.invoice_when(invoice["id"], lambda i: i["amount_paid"] == 400)
    await billing.publish(cancellation(created, credit=4999, days_in=0))
    issued = await billing.event_for("credit_note.issued", invoice["id"])

    assert (issued.payload["refund_amount"], issued.payload["payment_id"]) == (400, str(partial.payment_id))


async def test_a_credit_on_an_invoice_paid_in_two_parts_refunds_from_both_newest_first(billing, client, admin_headers):
    created, invoice = await billing.subscribe()
    first = await billing.pay(invoice, amount=1000, at=START + timedelta(hours=1))
    await billing.invoice_when(invoice["id"], lambda i: i["amount_paid"] == 1000)
    second = await billing.pay(invoice, amount=3999, at=START + timedelta(hours=2))
    await billing.invoice_when(invoice["id"], lambda i: i["status"] == "paid")

    await billing.publish(cancellation(created, credit=4500))
    issued = await billing.event_for("credit_note.issued", invoice["id"])

    assert issued.payload["refund_amount"] == 4500
    assert issued.payload["refunds"] == [
        {"payment_id": str(second.payment_id), "amount": 3999},
        {"payment_id": str(first.payment_id), "amount": 501},
    ]
    assert issued.payload["payment_id"] == str(second.payment_id)
    note = (await client.get(f"/api/credit_notes/{issued.payload['credit_note_id']}", headers=admin_headers)).json()
    assert note["refunds"] == issued.payload["refunds"]

    # What is left of the first payment (499) is all a second credit can refund.
    at = START + timedelta(days=12)
    await billing.publish(plan_change(created, at, "Basic", -3000, 100), at=at)
    _, again = await billing.bus.wait_for_type(
        "credit_note.issued", count=2, where=lambda e: e.payload["invoice_id"] == invoice["id"]
    )
    assert (again.payload["amount"], again.payload["refund_amount"]) == (499, 499)
    assert again.payload["refunds"] == [{"payment_id": str(first.payment_id), "amount": 499}]
