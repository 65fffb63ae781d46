"""Refunds (by an admin): partial or full, never more than captured in total (even concurrently), once per key."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from app.adapters.gateway import RefundResult
from app.db.models import Payment
from app.service_layer.refunds import apply_refund_result, reserve_refund
from billing_shared.testing import EventBus
from tests.conftest import HARD_DECLINE_CARD, events_about, idem


async def paid(client, customer, add_card, amount=1000, number=None) -> dict:
    customer_id, headers = customer
    await add_card(customer_id, headers, **({"number": number} if number else {}))
    response = await client.post(
        "/api/payments", json={"customer_id": str(customer_id), "amount": amount, "currency": "USD"}, headers=idem(headers)
    )
    assert response.status_code == 201
    return response.json()


def refund(client, payment, headers, amount=None, key=None):
    body = {} if amount is None else {"amount": amount}
    return client.post(f"/api/payments/{payment['id']}/refunds", json=body, headers=idem(headers, key))


async def test_partial_then_remaining_refund_publishes_payment_refunded(
    client, customer, add_card, service_env, admin_headers
):
    _, headers = customer
    payment = await paid(client, customer, add_card)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment.refunded")
        first = await refund(client, payment, admin_headers, 300)
        assert first.status_code == 201 and first.json()["status"] == "succeeded"
        rest = await refund(client, payment, admin_headers)  # no amount: all that is left
        assert rest.status_code == 201 and rest.json()["amount"] == 700
        events = await events_about(bus, "payment.refunded", count=2, payment_id=payment["id"])
        assert sorted(e.payload["amount"] for e in events) == [300, 700]
    after = (await client.get(f"/api/payments/{payment['id']}", headers=headers)).json()
    assert after["refunded_amount"] == 1000 and after["status"] == "succeeded"
    listed = (await client.get(f"/api/payments/{payment['id']}/refunds", headers=headers)).json()["data"]
    assert [r["id"] for r in listed] == [first.json()["id"], rest.json()["id"]]
    again = await refund(client, payment, admin_headers, 1)
    assert again.status_code == 409 and again.json()["error"]["code"] == "payment_fully_refunded"


async def test_more_than_is_left_is_422_and_nothing_changes(client, customer, add_card, gateway_stats, admin_headers):
    _, headers = customer
    payment = await paid(client, customer, add_card)
    calls = gateway_stats()["refund_calls"]
    too_much = await refund(client, payment, admin_headers, 1001)
    assert too_much.status_code == 422 and too_much.json()["error"]["field"] == "amount"
    for bad in (-5, 0, 10.0, "5"):
        response = await client.post(f"/api/payments/{payment['id']}/refunds", json={"amount": bad}, headers=idem(admin_headers))
        assert response.status_code == 422, bad
    assert gateway_stats()["refund_calls"] == calls
    assert (await client.get(f"/api/payments/{payment['id']}", headers=headers)).json()["refunded_amount"] == 0


async def test_concurrent_refunds_never_exceed_the_captured_amount(
    client, customer, add_card, gateway_stats, db, admin_headers
):
    _, headers = customer
    payment = await paid(client, customer, add_card, amount=1000)
    before = gateway_stats()["refunds"]
    responses = await asyncio.gather(*(refund(client, payment, admin_headers, 300) for _ in range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 201, 201, 422, 422, 422]
    assert gateway_stats()["refunds"] - before == 3
    async with db.sessions() as session:
        refunded = await session.scalar(select(Payment.refunded_amount).where(Payment.id == uuid.UUID(payment["id"])))
    assert refunded == 900


async def test_same_key_replays_the_refund_instead_of_refunding_twice(
    client, customer, add_card, gateway_stats, admin_headers
):
    _, headers = customer
    payment = await paid(client, customer, add_card)
    key = uuid.uuid4().hex
    first = await refund(client, payment, admin_headers, 250, key=key)
    second = await refund(client, payment, admin_headers, 250, key=key)
    assert first.json() == second.json()
    assert (await client.get(f"/api/payments/{payment['id']}", headers=headers)).json()["refunded_amount"] == 250
    other_body = await refund(client, payment, admin_headers, 100, key=key)
    assert other_body.status_code == 422 and other_body.json()["error"]["code"] == "idempotency_error"


async def test_a_failed_payment_cannot_be_refunded(client, customer, add_card, admin_headers):
    _, headers = customer
    payment = await paid(client, customer, add_card, number=HARD_DECLINE_CARD)
    assert payment["status"] == "failed"
    response = await refund(client, payment, admin_headers)
    assert response.status_code == 409 and response.json()["error"]["code"] == "payment_not_refundable"


async def test_only_an_admin_refunds_a_customer_sees_its_refunds_and_the_key_is_required(
    client, customer, add_card, service_env, admin_headers, gateway_stats
):
    _, headers = customer
    payment = await paid(client, customer, add_card)
    calls = gateway_stats()["refund_calls"]
    own = await refund(client, payment, headers)
    assert own.status_code == 403 and own.json()["error"]["code"] == "forbidden"
    assert (await refund(client, payment, service_env.auth(uuid.uuid4()))).status_code == 403
    assert gateway_stats()["refund_calls"] == calls
    assert (await client.get(f"/api/payments/{payment['id']}", headers=headers)).json()["refunded_amount"] == 0
    made = await refund(client, payment, admin_headers, 100)
    listed = await client.get(f"/api/payments/{payment['id']}/refunds", headers=headers)
    assert [r["id"] for r in listed.json()["data"]] == [made.json()["id"]]
    stranger = service_env.auth(uuid.uuid4())
    assert (await client.get(f"/api/payments/{payment['id']}/refunds", headers=stranger)).status_code == 404
    keyless = await client.post(f"/api/payments/{payment['id']}/refunds", json={}, headers=admin_headers)
    assert keyless.status_code == 400
    assert (await refund(client, {"id": str(uuid.uuid4())}, admin_headers)).status_code == 404


async def test_refunds_across_payments_show_an_admin_what_customers_are_still_owed_and_a_user_only_its_own(
    client, customer, add_card, admin_headers, service_env, db
):
    customer_id, headers = customer
    other_id = uuid.uuid4()
    other = (other_id, service_env.auth(other_id))
    payment, others_payment = await paid(client, customer, add_card), await paid(client, other, add_card)
    made = (await refund(client, others_payment, admin_headers, 100)).json()
    async with db.uow() as uow:  # a credit note's refund the gateway refused: the customer is still owed it
        locked = await uow.session.get(Payment, uuid.UUID(payment["id"]), with_for_update=True)
        owed = reserve_refund(locked, 400, now=datetime.now(UTC), pending_grace_s=60, reason="credit_note",
                              credit_note_id=uuid.uuid4(), key=f"test:{uuid.uuid4()}")
        apply_refund_result(locked, owed, RefundResult("failed", failure_code="charge_expired"),
                            now=datetime.now(UTC), schedule=[60])
        uow.session.add(owed)
        await uow.commit()

    async def listed(query: str, as_headers: dict[str, str]) -> list[tuple[str, str]]:
        response = await client.get(f"/api/refunds?{query}", headers=as_headers)
        assert response.status_code == 200, response.text
        return [(r["id"], r["status"]) for r in response.json()["data"]]

    still_owed = await listed("status=failed&reason=credit_note&limit=100", admin_headers)
    assert (str(owed.id), "failed") in still_owed and all(status == "failed" for _, status in still_owed)
    assert await listed(f"customer_id={customer_id}", admin_headers) == [(str(owed.id), "failed")]
    assert await listed("", other[1]) == [(made["id"], "succeeded")]  # a user's own, whatever it asks
    snooping = await client.get(f"/api/refunds?customer_id={customer_id}", headers=other[1])
    assert snooping.status_code == 404 and snooping.json()["error"]["message"] == "customer not found"
    assert (await client.get("/api/refunds?status=lost", headers=admin_headers)).status_code == 422
