"""Consumed events: invoice.finalized charges once, dunning.retry_due charges again, credit notes refund."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.adapters.gateway import RefundResult
from app.db.models import Payment, Refund
from app.service_layer.refunds import apply_refund_result, reserve_refund
from billing_shared.contracts import (
    CreditNoteIssued,
    DunningRetryDue,
    InvoiceFinalized,
    InvoiceOverpaid,
    InvoiceVoided,
    RefundShare,
)
from billing_shared.events import Envelope
from billing_shared.plumbing_tables import outbox_table
from billing_shared.testing import EventBus, events_handled, wait_for
from tests.conftest import HARD_DECLINE_CARD, events_about, idem
from tests.integration.test_reconciliation import later


def finalized(customer_id, amount_due=2500, **extra) -> InvoiceFinalized:
    return InvoiceFinalized(
        invoice_id=extra.pop("invoice_id", uuid.uuid4()),
        number="INV-0001",
        customer_id=customer_id,
        subscription_id=extra.pop("subscription_id", uuid.uuid4()),
        currency="USD",
        total=amount_due,
        amount_due=amount_due,
        due_at=datetime.now(UTC) + timedelta(days=7),
        **extra,
    )


def handled(event_type: str) -> float:
    return events_handled("payment", event_type, "handled", "duplicate")


def handled_at_least(event_type: str, count: float):
    """A wait_for probe: the consumer(s) of this process have handled (or dropped as duplicates) `count` so far."""

    async def probe() -> bool:
        return handled(event_type) >= count

    return probe


async def announce_twice(bus: EventBus, event) -> None:
    """Publish the event twice under two event ids and wait until the service has handled both."""
    seen = handled(event.type)
    await bus.publish(event)
    await bus.publish(event)
    await wait_for(handled_at_least(event.type, seen + 2), message=f"both announcements of {event.type} handled")


async def invoice_payments(db, invoice_id) -> list[Payment]:
    async with db.sessions() as session:
        return list(await session.scalars(select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.attempt)))


async def announced(db, event_type: str, payment_id) -> list[str]:
    """The routing keys of the outbox rows announcing this event type of the payment."""
    outbox = outbox_table("payment")
    async with db.sessions() as session:
        return list(await session.scalars(
            select(outbox.c.routing_key).where(
                outbox.c.body["type"].astext == event_type,
                outbox.c.body["payload"]["payment_id"].astext == str(payment_id),
            )
        ))


async def test_finalized_invoice_is_charged_to_the_default_method(customer, add_card, service_env):
    customer_id, headers = customer
    method = await add_card(customer_id, headers)
    invoice = finalized(customer_id)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment.succeeded")
        await bus.publish(invoice)
        [event] = await events_about(bus, "payment.succeeded", customer_id=customer_id)
    payload = event.payload
    assert payload["invoice_id"] == str(invoice.invoice_id)
    assert payload["subscription_id"] == str(invoice.subscription_id)
    assert (payload["amount"], payload["currency"], payload["attempt"]) == (2500, "USD", 1)
    assert payload["payment_method_id"] == method["id"]


async def test_invoice_with_nothing_due_is_not_charged(customer, add_card, service_env, db, gateway_stats):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    before = handled("invoice.finalized")
    calls = gateway_stats()["charge_calls"]
    invoice = finalized(customer_id, amount_due=0)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.publish(invoice)
        await wait_for(handled_at_least("invoice.finalized", before + 1), message="the event to be handled")
    assert await invoice_payments(db, invoice.invoice_id) == []
    assert gateway_stats()["charge_calls"] == calls


async def test_no_payment_method_fails_hard_without_calling_the_gateway(customer, service_env, gateway_stats):
    customer_id, _ = customer
    calls = gateway_stats()["charge_calls"]
    invoice = finalized(customer_id)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment.failed")
        await bus.publish(invoice)
        [event] = await events_about(bus, "payment.failed", customer_id=customer_id)
    assert (event.payload["failure_code"], event.payload["decline_type"]) == ("no_payment_method", "hard")
    assert event.payload["invoice_id"] == str(invoice.invoice_id) and event.payload["attempt"] == 1
    assert gateway_stats()["charge_calls"] == calls


async def test_a_payment_by_hand_of_a_subscription_invoice_names_its_subscription(
    customer, add_card, client, service_env
):
    """So that the dunning case its failure opens ends when the subscription is canceled."""
    customer_id, headers = customer
    invoice = finalized(customer_id)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment.failed")
        await bus.publish(invoice)  # no card yet: the automatic charge fails at once
        await events_about(bus, "payment.failed", customer_id=customer_id)
        await add_card(customer_id, headers, number=HARD_DECLINE_CARD)
        body = {"customer_id": str(customer_id), "amount": 2500, "currency": "usd", "invoice_id": str(invoice.invoice_id)}
        response = await client.post("/api/payments", json=body, headers=idem(headers))
        assert response.status_code == 201, response.text
        [by_hand] = await events_about(bus, "payment.failed", payment_id=response.json()["id"])
    assert response.json()["subscription_id"] == str(invoice.subscription_id)
    assert by_hand.payload["subscription_id"] == str(invoice.subscription_id)
    assert by_hand.payload["invoice_id"] == str(invoice.invoice_id)


async def charged_on_finalize(bus: EventBus, invoice: InvoiceFinalized, outcome: str) -> None:
    """Publish the invoice's finalization and wait for its automatic charge's outcome (payment.succeeded/failed)."""
    await bus.record(outcome)
    await bus.publish(invoice)
    await events_about(bus, outcome, invoice_id=invoice.invoice_id)


@pytest.mark.parametrize(
    ("whose", "currency", "paid", "status", "code"),
    [
        ("another customer's", "usd", False, 422, "unknown_invoice"),  # not even that it exists
        ("no one's", "usd", False, 422, "unknown_invoice"),  # never finalized (or a typo)
        ("own", "eur", False, 422, "currency_mismatch"),
        ("own", "usd", True, 409, "invoice_paid"),
    ],
)
async def test_a_payment_by_hand_of_an_invoice_it_cannot_settle_is_refused_before_any_charge(
    customer, add_card, client, service_env, db, gateway_stats, whose, currency, paid, status, code
):
    """Charged, such a payment would leave the invoice open (the invoice service cannot apply it) or pay it twice."""
    customer_id, headers = customer
    invoice = finalized(uuid.uuid4() if whose == "another customer's" else customer_id)
    if paid:
        await add_card(customer_id, headers)
    async with EventBus(service_env.amqp_url) as bus:
        if whose != "no one's":
            await charged_on_finalize(bus, invoice, "payment.succeeded" if paid else "payment.failed")
    if not paid:
        await add_card(customer_id, headers)
    charges_before = gateway_stats()["charges"]
    body = {"customer_id": str(customer_id), "amount": 2500, "currency": currency, "invoice_id": str(invoice.invoice_id)}
    response = await client.post("/api/payments", json=body, headers=idem(headers))
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert gateway_stats()["charges"] == charges_before
    assert [p.source for p in await invoice_payments(db, invoice.invoice_id)] == ([] if whose == "no one's" else ["invoice"])


async def unpaid_invoice_with_a_card(bus: EventBus, customer, add_card) -> InvoiceFinalized:
    """An invoice whose automatic charge failed (no card then); the customer has a good card now. The bus
    records payment.failed from here on."""
    customer_id, headers = customer
    invoice = finalized(customer_id)
    await charged_on_finalize(bus, invoice, "payment.failed")
    await add_card(customer_id, headers)
    return invoice


def pay_by_hand(invoice: InvoiceFinalized) -> dict:
    return {"customer_id": str(invoice.customer_id), "amount": invoice.amount_due, "currency": "usd",
            "invoice_id": str(invoice.invoice_id)}


async def retried_by_dunning(bus: EventBus, invoice: InvoiceFinalized, amount: int) -> None:
    """Publish dunning.retry_due (attempt 2) of the invoice for `amount` and wait until it is handled."""
    retries = handled("dunning.retry_due")
    await bus.publish(DunningRetryDue(case_id=uuid.uuid4(), customer_id=invoice.customer_id,
                                      invoice_id=invoice.invoice_id, amount=amount, currency="USD", attempt=2))
    await wait_for(handled_at_least("dunning.retry_due", retries + 1), message="the retry handled")


async def test_a_dunning_retry_of_an_invoice_paid_by_hand_meanwhile_charges_nothing(
    customer, add_card, client, service_env, db, gateway_stats
):
    _, headers = customer
    async with EventBus(service_env.amqp_url) as bus:
        invoice = await unpaid_invoice_with_a_card(bus, customer, add_card)
        response = await client.post("/api/payments", json=pay_by_hand(invoice), headers=idem(headers))
        assert response.json()["status"] == "succeeded", response.text
        charges_before = gateway_stats()["charges"]
        await retried_by_dunning(bus, invoice, 2500)
    assert gateway_stats()["charges"] == charges_before
    assert [(p.source, p.status) for p in await invoice_payments(db, invoice.invoice_id)] == [
        ("invoice", "failed"), ("api", "succeeded")
    ]


async def test_an_invoice_a_credit_note_lowered_is_paid_by_the_rest_and_then_charged_no_more(
    customer, add_card, client, service_env, db, gateway_stats
):
    _, headers = customer
    async with EventBus(service_env.amqp_url) as bus:
        invoice = await unpaid_invoice_with_a_card(bus, customer, add_card)  # 2500 due, its charge failed
        notes = handled("credit_note.issued")
        await bus.publish(CreditNoteIssued(
            credit_note_id=uuid.uuid4(), number="CN-7", invoice_id=invoice.invoice_id, customer_id=invoice.customer_id,
            amount=1000, currency="USD", refund_due=False, amount_due=1500,
        ))
        await wait_for(handled_at_least("credit_note.issued", notes + 1), message="the credit note handled")
        rest = await client.post("/api/payments", json=pay_by_hand(invoice) | {"amount": 1500}, headers=idem(headers))
        assert rest.json()["status"] == "succeeded", rest.text
        charges_before = gateway_stats()["charges"]
        again = await client.post("/api/payments", json=pay_by_hand(invoice), headers=idem(headers))
        await retried_by_dunning(bus, invoice, 1500)
    assert again.status_code == 409 and again.json()["error"]["code"] == "invoice_paid"
    assert gateway_stats()["charges"] == charges_before
    assert [(p.source, p.status) for p in await invoice_payments(db, invoice.invoice_id)] == [
        ("invoice", "failed"), ("api", "succeeded")
    ]


async def test_a_voided_invoice_is_charged_neither_by_hand_nor_by_a_dunning_retry(
    customer, add_card, client, service_env, db, gateway_stats
):
    _, headers = customer
    async with EventBus(service_env.amqp_url) as bus:
        invoice = await unpaid_invoice_with_a_card(bus, customer, add_card)
        voids = handled("invoice.voided")
        await bus.publish(InvoiceVoided(invoice_id=invoice.invoice_id, customer_id=invoice.customer_id,
                                        currency="USD", total=invoice.amount_due))
        await wait_for(handled_at_least("invoice.voided", voids + 1), message="the void handled")
        charges_before = gateway_stats()["charges"]
        by_hand = await client.post("/api/payments", json=pay_by_hand(invoice), headers=idem(headers))
        await retried_by_dunning(bus, invoice, 2500)
    assert by_hand.status_code == 409 and by_hand.json()["error"]["code"] == "invoice_void"
    assert gateway_stats()["charges"] == charges_before
    assert [(p.source, p.status) for p in await invoice_payments(db, invoice.invoice_id)] == [("invoice", "failed")]


async def test_a_payment_by_hand_cannot_take_more_than_the_invoice_owes(
    customer, add_card, client, service_env, db, gateway_stats
):
    _, headers = customer
    async with EventBus(service_env.amqp_url) as bus:
        invoice = await unpaid_invoice_with_a_card(bus, customer, add_card)  # 2500 due, its charge failed
        charges_before = gateway_stats()["charges"]
        typo = await client.post("/api/payments", json=pay_by_hand(invoice) | {"amount": 2500000}, headers=idem(headers))
        one_more = await client.post("/api/payments", json=pay_by_hand(invoice) | {"amount": 2501}, headers=idem(headers))
    for refused in (typo, one_more):
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "amount_exceeds_due", refused.text
    assert "$25.00" in typo.json()["error"]["message"]
    assert gateway_stats()["charges"] == charges_before
    assert [(p.source, p.status) for p in await invoice_payments(db, invoice.invoice_id)] == [("invoice", "failed")]


async def test_two_clicks_paying_an_invoice_by_hand_with_two_keys_charge_it_once(
    customer, add_card, client, service_env, db, gateway_stats
):
    _, headers = customer
    async with EventBus(service_env.amqp_url) as bus:
        invoice = await unpaid_invoice_with_a_card(bus, customer, add_card)
        charges_before = gateway_stats()["charges"]
        clicks = await asyncio.gather(*(
            client.post("/api/payments", json=pay_by_hand(invoice), headers=idem(headers)) for _ in range(2)
        ))
    assert sorted(r.status_code for r in clicks) == [201, 409], [r.text for r in clicks]
    [refused] = [r for r in clicks if r.status_code == 409]
    assert refused.json()["error"]["code"] in ("payment_in_progress", "invoice_paid")
    assert gateway_stats()["charges"] == charges_before + 1
    assert sorted((p.source, p.status) for p in await invoice_payments(db, invoice.invoice_id)) == [
        ("api", "succeeded"), ("invoice", "failed")
    ]


async def test_an_invoice_voided_before_its_finalization_is_heard_of_is_not_charged(
    customer, add_card, service_env, db, gateway_stats
):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    invoice = finalized(customer_id)
    async with EventBus(service_env.amqp_url) as bus:
        voids, finalizations = handled("invoice.voided"), handled("invoice.finalized")
        await bus.publish(InvoiceVoided(invoice_id=invoice.invoice_id, customer_id=customer_id, currency="USD",
                                        total=invoice.amount_due))
        await wait_for(handled_at_least("invoice.voided", voids + 1), message="the void handled")
        charges_before = gateway_stats()["charges"]
        await bus.publish(invoice)  # invoice.finalized, back from the delay queues after the void
        await wait_for(handled_at_least("invoice.finalized", finalizations + 1), message="the finalization handled")
    assert gateway_stats()["charges"] == charges_before
    assert await invoice_payments(db, invoice.invoice_id) == []


async def test_a_charge_found_never_made_after_its_invoice_was_paid_by_hand_says_the_invoice_is_paid(
    customer, add_card, client, admin_headers, service_env, start_replica
):
    """Its payment.failed must not have dunning chase an invoice that is paid: it says so."""
    _, headers = customer
    async with EventBus(service_env.amqp_url) as bus:
        invoice = await unpaid_invoice_with_a_card(bus, customer, add_card)
        # The first try by hand never reaches the provider (nothing listens there): its outcome is unknown.
        async with start_replica(payment_gateway_url="http://127.0.0.1:9", payment_gateway_attempts=1,
                                 run_consumer=False, run_relay=False) as (_, cut_off):
            lost = (await cut_off.post("/api/payments", json=pay_by_hand(invoice), headers=idem(headers))).json()
        assert lost["status"] == "unknown"
        paid = (await client.post("/api/payments", json=pay_by_hand(invoice), headers=idem(headers))).json()
        assert paid["status"] == "succeeded"
        for seconds in (301, 3_700, 90_000, 200_000):  # past every check of the schedule: never made
            response = await client.post("/api/payments/reconcile", json={"as_of": later(seconds)},
                                         headers=admin_headers)
            assert response.status_code == 200, response.text
        [failed] = await events_about(bus, "payment.failed", payment_id=lost["id"])
    assert failed.payload["failure_code"] == "charge_not_found"
    assert failed.payload["invoice_already_paid"] is True


async def test_redelivered_and_duplicated_invoice_events_on_two_replicas_charge_once(
    customer, add_card, service_env, start_replica, db, gateway_stats
):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    invoice = finalized(customer_id)
    before = gateway_stats()["charges"]
    async with start_replica(), EventBus(service_env.amqp_url) as bus:
        seen = handled("invoice.finalized")
        envelope = Envelope(type=invoice.type, producer="invoice", payload=invoice.model_dump(mode="json"))
        for _ in range(3):  # the same event delivered three times
            await bus.publish(envelope)
        await bus.publish(invoice)  # and the same fact announced again under another event id
        await wait_for(handled_at_least("invoice.finalized", seen + 4), message="4 deliveries handled")
    [payment] = await invoice_payments(db, invoice.invoice_id)
    assert payment.status == "succeeded"
    assert gateway_stats()["charges"] - before == 1
    assert await announced(db, "payment.succeeded", payment.id) == ["payment.succeeded.invoice.direct"]


@pytest.mark.parametrize(
    ("retry_amount", "charged"),
    [
        (9999, 1500),  # never more than the invoice's first charge asked
        (999, 999),  # what dunning knows is still due: a credit note lowered the invoice
    ],
)
async def test_dunning_retry_charges_the_invoice_again_as_the_next_attempt(
    customer, add_card, service_env, client, db, retry_amount, charged
):
    customer_id, headers = customer
    declined = await add_card(customer_id, headers, number=HARD_DECLINE_CARD)
    invoice = finalized(customer_id, amount_due=1500)
    case_id = uuid.uuid4()
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment.failed", "payment.succeeded")
        await bus.publish(invoice)
        [failed] = await events_about(bus, "payment.failed", customer_id=customer_id)
        assert failed.payload["payment_method_id"] == declined["id"]
        # The customer adds a good card and makes it the default; dunning retries.
        good = await add_card(customer_id, headers)
        await client.post(f"/api/customers/{customer_id}/payment_methods/{good['id']}/default", headers=headers)
        retry = DunningRetryDue(
            case_id=case_id, customer_id=customer_id, invoice_id=invoice.invoice_id, payment_id=failed.payload["payment_id"],
            subscription_id=invoice.subscription_id, amount=retry_amount, currency="USD", attempt=2,
        )
        await bus.publish(retry)
        await bus.publish(retry)  # a second announcement of the same retry changes nothing
        [succeeded] = await events_about(bus, "payment.succeeded", customer_id=customer_id)
    assert succeeded.payload["attempt"] == 2 and succeeded.payload["dunning_case_id"] == str(case_id)
    assert succeeded.payload["amount"] == charged
    assert succeeded.payload["payment_method_id"] == good["id"]
    assert [p.attempt for p in await invoice_payments(db, invoice.invoice_id)] == [1, 2]


async def test_dunning_retry_of_a_one_off_payment_charges_its_amount_again(customer, add_card, client, service_env, db):
    customer_id, headers = customer
    declined = await add_card(customer_id, headers, number=HARD_DECLINE_CARD)
    original = (await client.post(
        "/api/payments", json={"customer_id": str(customer_id), "amount": 777, "currency": "GBP"}, headers=idem(headers)
    )).json()
    assert original["status"] == "failed"
    good = await add_card(customer_id, headers)
    await client.post(f"/api/customers/{customer_id}/payment_methods/{good['id']}/default", headers=headers)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment.succeeded")
        await bus.publish(DunningRetryDue(
            case_id=uuid.uuid4(), customer_id=customer_id, payment_id=uuid.UUID(original["id"]),
            amount=777, currency="GBP", attempt=2,
        ))
        [event] = await events_about(bus, "payment.succeeded", customer_id=customer_id)
    assert (event.payload["amount"], event.payload["currency"], event.payload["attempt"]) == (777, "GBP", 2)
    async with db.sessions() as session:
        retry = await session.get(Payment, uuid.UUID(event.payload["payment_id"]))
    assert retry.original_payment_id == uuid.UUID(original["id"])
    assert declined["id"] != event.payload["payment_method_id"]


async def test_credit_note_with_a_refund_due_refunds_once(customer, add_card, client, service_env, gateway_stats, db):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    payment = (await client.post(
        "/api/payments", json={"customer_id": str(customer_id), "amount": 3000, "currency": "USD"}, headers=idem(headers)
    )).json()
    note = CreditNoteIssued(
        credit_note_id=uuid.uuid4(), number="CN-1", invoice_id=uuid.uuid4(), customer_id=customer_id, amount=1200,
        currency="USD", refund_due=True, refund_amount=1200, payment_id=uuid.UUID(payment["id"]),
    )
    before = gateway_stats()["refunds"]
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment.refunded")
        await announce_twice(bus, note)
        [event] = await events_about(bus, "payment.refunded", customer_id=customer_id)
    assert event.payload["credit_note_id"] == str(note.credit_note_id) and event.payload["amount"] == 1200
    assert (await client.get(f"/api/payments/{payment['id']}", headers=headers)).json()["refunded_amount"] == 1200
    assert gateway_stats()["refunds"] - before == 1
    assert await announced(db, "payment.refunded", payment["id"]) == ["payment.refunded"]


async def test_a_credit_note_refunds_from_each_payment_it_names_once(customer, add_card, client, service_env,
                                                                     gateway_stats):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    first, second = [
        (await client.post("/api/payments", json={"customer_id": str(customer_id), "amount": amount,
                                                  "currency": "USD"}, headers=idem(headers))).json()
        for amount in (1000, 3999)
    ]
    note = CreditNoteIssued(
        credit_note_id=uuid.uuid4(), number="CN-2", invoice_id=uuid.uuid4(), customer_id=customer_id, amount=4500,
        currency="USD", refund_due=True, refund_amount=4500, payment_id=uuid.UUID(second["id"]),
        refunds=[RefundShare(payment_id=second["id"], amount=3999), RefundShare(payment_id=first["id"], amount=501)],
    )
    before = gateway_stats()["refunds"]
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment.refunded")
        await announce_twice(bus, note)
        events = await events_about(bus, "payment.refunded", count=2, credit_note_id=note.credit_note_id)
    assert sorted((e.payload["payment_id"], e.payload["amount"]) for e in events) == sorted(
        [(second["id"], 3999), (first["id"], 501)]
    )
    refunded = [(await client.get(f"/api/payments/{p['id']}", headers=headers)).json()["refunded_amount"]
                for p in (first, second)]
    assert refunded == [501, 3999]
    assert gateway_stats()["refunds"] - before == 2


async def test_a_refund_owed_while_an_earlier_refund_is_unsettled_waits_and_is_made_in_full_if_that_one_fails(
    customer, add_card, client, service_env, gateway_stats, db
):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    body = {"customer_id": str(customer_id), "amount": 3000, "currency": "USD"}
    payment = (await client.post("/api/payments", json=body, headers=idem(headers))).json()
    payment_id = uuid.UUID(payment["id"])
    # A refund of all of it whose gateway answer was lost: its 3000 stay reserved until the reconciler settles it.
    async with db.uow() as uow:
        paid = await uow.session.get(Payment, payment_id, with_for_update=True)
        earlier = reserve_refund(paid, 3000, now=datetime.now(UTC), pending_grace_s=3600)
        earlier.status = "unknown"
        uow.session.add(earlier)
        await uow.commit()
    note = CreditNoteIssued(
        credit_note_id=uuid.uuid4(), number="CN-9", invoice_id=uuid.uuid4(), customer_id=customer_id, amount=1200,
        currency="USD", refund_due=True, refund_amount=1200, payment_id=payment_id,
    )
    refunds_before, waits_before = gateway_stats()["refunds"], events_handled("payment", note.type, "failed")

    async def waited_twice() -> bool:
        return events_handled("payment", note.type, "failed") >= waits_before + 2

    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment.refunded")
        await bus.publish(note)
        await wait_for(waited_twice, message="the credit note tried twice while the earlier refund is open")
        assert gateway_stats()["refunds"] == refunds_before  # neither skipped nor cut to what is left (nothing)
        async with db.uow() as uow:  # the gateway says the earlier refund failed: its 3000 are free again
            paid = await uow.session.get(Payment, payment_id, with_for_update=True)
            earlier = await uow.session.get(Refund, earlier.id, with_for_update=True)
            apply_refund_result(paid, earlier, RefundResult("failed", failure_code="expired_card"),
                                now=datetime.now(UTC), schedule=[60])
            await uow.commit()
        [event] = await events_about(bus, "payment.refunded", credit_note_id=note.credit_note_id)
    assert event.payload["amount"] == 1200
    assert (await client.get(f"/api/payments/{payment_id}", headers=headers)).json()["refunded_amount"] == 1200
    assert gateway_stats()["refunds"] - refunds_before == 1


async def test_what_an_invoice_did_not_owe_is_refunded_once_as_an_overpayment(customer, add_card, client, service_env,
                                                                              gateway_stats, admin_headers):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    body = {"customer_id": str(customer_id), "amount": 4999, "currency": "USD"}
    payment = (await client.post("/api/payments", json=body, headers=idem(headers))).json()
    overpaid = InvoiceOverpaid(
        invoice_id=uuid.uuid4(), customer_id=customer_id, payment_id=payment["id"], amount=4999, currency="USD",
        invoice_status="paid",
    )
    before = gateway_stats()["refunds"]
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment.refunded")
        await announce_twice(bus, overpaid)
        [event] = await events_about(bus, "payment.refunded", payment_id=payment["id"])
    assert (event.payload["amount"], event.payload["reason"], event.payload["credit_note_id"]) == (
        4999, "overpayment", None)
    assert gateway_stats()["refunds"] - before == 1
    [refund] = (await client.get(f"/api/payments/{payment['id']}/refunds", headers=admin_headers)).json()["data"]
    assert (refund["reason"], refund["status"], refund["amount"]) == ("overpayment", "succeeded", 4999)
