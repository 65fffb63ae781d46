"""One-off payments: outcomes per test card, Stripe idempotency semantics, access rules, bad input."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select, text

from app.api import payments as payments_api
from app.db.models import Payment
from billing_shared.testing import EventBus
from tests.conftest import HARD_DECLINE_CARD, INSUFFICIENT_FUNDS_CARD, events_about, idem


def payment_body(customer_id, /, **overrides):
    return {"customer_id": str(customer_id), "amount": 1999, "currency": "usd", **overrides}


async def count_payments(db, customer_id) -> int:
    async with db.sessions() as session:
        return await session.scalar(select(func.count()).where(Payment.customer_id == customer_id))


async def test_a_good_card_is_charged_and_payment_succeeded_is_published(client, customer, add_card, service_env):
    customer_id, headers = customer
    method = await add_card(customer_id, headers)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment.succeeded")
        response = await client.post("/api/payments", json=payment_body(customer_id), headers=idem(headers))
        assert response.status_code == 201, response.text
        payment = response.json()
        assert (payment["status"], payment["amount"], payment["currency"]) == ("succeeded", 1999, "USD")
        assert payment["payment_method_id"] == method["id"] and payment["gateway_charge_id"].startswith("ch_")
        [event] = await events_about(bus, "payment.succeeded", payment_id=payment["id"])
        assert event.payload["payment_id"] == payment["id"]
        assert event.payload["invoice_id"] is None and event.payload["attempt"] == 1


@pytest.mark.parametrize(
    ("card", "code", "decline_type"),
    [(HARD_DECLINE_CARD, "card_declined", "hard"), (INSUFFICIENT_FUNDS_CARD, "insufficient_funds", "soft")],
)
async def test_a_decline_is_a_201_failed_payment_and_publishes_payment_failed(
    client, customer, add_card, service_env, card, code, decline_type
):
    customer_id, headers = customer
    await add_card(customer_id, headers, number=card)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment.failed")
        response = await client.post("/api/payments", json=payment_body(customer_id), headers=idem(headers))
        assert response.status_code == 201
        payment = response.json()
        assert (payment["status"], payment["failure_code"], payment["decline_type"]) == ("failed", code, decline_type)
        [event] = await events_about(bus, "payment.failed", payment_id=payment["id"])
        assert (event.payload["failure_code"], event.payload["decline_type"]) == (code, decline_type)
        assert event.payload["attempt"] == 1 and event.payload["payment_id"] == payment["id"]


async def test_20_concurrent_identical_posts_charge_once_and_answer_identically(
    client, customer, add_card, gateway_stats, db
):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    before = gateway_stats()["charges"]
    keyed = idem(headers)
    responses = await asyncio.gather(
        *(client.post("/api/payments", json=payment_body(customer_id), headers=keyed) for _ in range(20))
    )
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses if r.status_code != 201]
    bodies = [r.json() for r in responses]
    assert all(body == bodies[0] for body in bodies), bodies
    assert bodies[0]["status"] == "succeeded"
    assert gateway_stats()["charges"] - before == 1, gateway_stats()
    assert await count_payments(db, customer_id) == 1


async def test_same_key_with_another_body_is_422_idempotency_error(client, customer, add_card, db):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    keyed = idem(headers)
    assert (await client.post("/api/payments", json=payment_body(customer_id), headers=keyed)).status_code == 201
    other = await client.post("/api/payments", json=payment_body(customer_id, amount=2000), headers=keyed)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_error"
    assert await count_payments(db, customer_id) == 1


async def test_a_replay_returns_the_first_response_even_for_a_decline(client, customer, add_card, gateway_stats):
    customer_id, headers = customer
    await add_card(customer_id, headers, number=HARD_DECLINE_CARD)
    keyed = idem(headers)
    first = await client.post("/api/payments", json=payment_body(customer_id), headers=keyed)
    calls = gateway_stats()["charge_calls"]
    again = await client.post("/api/payments", json=payment_body(customer_id), headers=keyed)
    assert again.status_code == first.status_code == 201
    assert again.json() == first.json()
    assert gateway_stats()["charge_calls"] == calls


async def test_missing_idempotency_key_is_400_and_nothing_is_written(client, customer, add_card, db):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    response = await client.post("/api/payments", json=payment_body(customer_id), headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_required"
    assert await count_payments(db, customer_id) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount": -100}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": 50.0}, "amount"),
        ({"amount": "1999"}, "amount"),
        ({"amount": True}, "amount"),
        ({"currency": "XXY"}, "currency"),
        ({"currency": "dollars"}, "currency"),
        ({"currency": "XXX"}, "currency"),  # ISO's "no currency"
        ({"currency": "XAU"}, "currency"),  # gold
        ({"currency": "DEM"}, "currency"),  # withdrawn in 2002
        ({"customer_id": "not-a-uuid"}, "customer_id"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_bad_input_is_422_naming_the_field_and_nothing_is_written(
    client, customer, add_card, db, gateway_stats, overrides, field
):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    calls = gateway_stats()["charge_calls"]
    response = await client.post("/api/payments", json=payment_body(customer_id, **overrides), headers=idem(headers))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert await count_payments(db, customer_id) == 0
    assert gateway_stats()["charge_calls"] == calls


async def test_a_value_postgres_cannot_store_is_422_and_nothing_is_written(
    client, customer, add_card, db, gateway_stats
):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    calls = gateway_stats()["charge_calls"]
    keyed = idem(headers)
    body = payment_body(customer_id, description="nul\u0000byte")
    for _ in range(2):  # and again under the same key: the refused first try claimed nothing
        response = await client.post("/api/payments", json=body, headers=keyed)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"
    assert await count_payments(db, customer_id) == 0
    assert gateway_stats()["charge_calls"] == calls


async def die_after_claiming_the_key(client, monkeypatch, body: dict, headers: dict) -> None:
    """A POST that claims its key and writes its pending payment, then dies before the gateway answers."""

    async def die(*args, **kwargs):
        raise RuntimeError("the process died before the gateway answered")

    monkeypatch.setattr(payments_api, "charge_at_gateway", die)
    with pytest.raises(RuntimeError):
        await client.post("/api/payments", json=body, headers=headers)
    monkeypatch.undo()


async def make_the_claim_stale(db, key: str) -> None:
    """Age the key's claim past the window in which a retry waits for the request that holds it."""
    async with db.sessions() as session, session.begin():
        await session.execute(
            text("UPDATE idempotency_keys SET updated_at = updated_at - interval '5 minutes' WHERE key = :key"),
            {"key": key},
        )


async def test_a_request_that_died_after_claiming_its_key_is_resumed_by_a_retry_once_stale(
    client, customer, add_card, db, gateway_stats, monkeypatch
):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    keyed = idem(headers)

    await die_after_claiming_the_key(client, monkeypatch, payment_body(customer_id), keyed)
    async with db.sessions() as session:
        [pending] = (await session.scalars(select(Payment).where(Payment.customer_id == customer_id))).all()
        # The key was claimed together with its pending payment: the claim names the payment to resume.
        claimed = await session.scalar(
            text("SELECT resource_id FROM idempotency_keys WHERE key = :key"), {"key": keyed["Idempotency-Key"]}
        )
    assert pending.status == "pending" and claimed == pending.id
    await make_the_claim_stale(db, keyed["Idempotency-Key"])
    before = gateway_stats()["charges"]

    retried = await client.post("/api/payments", json=payment_body(customer_id), headers=keyed)

    assert retried.status_code == 201, retried.text
    assert (retried.json()["id"], retried.json()["status"]) == (str(pending.id), "succeeded")
    assert gateway_stats()["charges"] - before == 1
    assert await count_payments(db, customer_id) == 1


async def test_a_resumed_request_does_not_charge_a_card_detached_since_and_leaves_it_to_the_reconciler(
    client, customer, add_card, db, gateway_stats, monkeypatch
):
    customer_id, headers = customer
    method = await add_card(customer_id, headers)
    keyed = idem(headers)

    await die_after_claiming_the_key(client, monkeypatch, payment_body(customer_id), keyed)
    detached = await client.delete(f"/api/customers/{customer_id}/payment_methods/{method['id']}", headers=headers)
    assert detached.status_code == 200
    await make_the_claim_stale(db, keyed["Idempotency-Key"])
    calls = gateway_stats()["charge_calls"]

    retried = await client.post("/api/payments", json=payment_body(customer_id), headers=keyed)

    assert retried.status_code == 201, retried.text
    assert retried.json()["status"] == "pending"
    assert gateway_stats()["charge_calls"] == calls


async def test_another_customers_payment_method_is_refused_and_the_key_stays_usable(
    client, customer, add_card, service_env, db
):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    other_id = uuid.uuid4()
    theirs = await add_card(other_id, service_env.auth(other_id))
    keyed = idem(headers)
    refused = await client.post(
        "/api/payments", json=payment_body(customer_id, payment_method_id=theirs["id"]), headers=keyed
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "payment_method_id"
    assert await count_payments(db, customer_id) == 0 and await count_payments(db, other_id) == 0
    # Nothing was remembered under the key: a corrected request with it goes through.
    assert (await client.post("/api/payments", json=payment_body(customer_id), headers=keyed)).status_code == 201


async def test_a_user_cannot_charge_another_customer(client, customer, add_card, service_env, db):
    customer_id, headers = customer
    other_id = uuid.uuid4()
    await add_card(other_id, service_env.auth(other_id))
    response = await client.post("/api/payments", json=payment_body(other_id), headers=idem(headers))
    assert response.status_code == 404
    assert await count_payments(db, other_id) == 0


async def test_no_default_payment_method_is_422(client, customer, db):
    customer_id, headers = customer
    response = await client.post("/api/payments", json=payment_body(customer_id), headers=idem(headers))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_payment_method"


async def test_a_payment_is_visible_to_its_customer_and_admin_only(client, customer, add_card, admin_headers, service_env):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    payment = (await client.post("/api/payments", json=payment_body(customer_id), headers=idem(headers))).json()
    url = f"/api/payments/{payment['id']}"
    assert (await client.get(url, headers=headers)).json() == payment
    assert (await client.get(url, headers=admin_headers)).status_code == 200
    assert (await client.get(url, headers=service_env.auth(uuid.uuid4()))).status_code == 404
    assert (await client.get(url)).status_code == 401


async def test_listing_shows_a_user_only_its_own_payments_filtered_and_paginated(
    client, customer, add_card, admin_headers, service_env
):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    declined = await add_card(customer_id, headers, number=HARD_DECLINE_CARD)
    ids = []
    for method_id in (None, declined["id"], None):
        extra = {"payment_method_id": method_id} if method_id else {}
        ids.append((await client.post("/api/payments", json=payment_body(customer_id, **extra), headers=idem(headers))).json()["id"])
    page = (await client.get("/api/payments", params={"limit": 2}, headers=headers)).json()
    rest = (await client.get("/api/payments", params={"limit": 2, "cursor": page["next_cursor"]}, headers=headers)).json()
    assert [p["id"] for p in page["data"] + rest["data"]] == ids
    failed = (await client.get("/api/payments", params={"status": "failed"}, headers=headers)).json()["data"]
    assert [p["id"] for p in failed] == [ids[1]]
    stranger = service_env.auth(uuid.uuid4())
    snooping = await client.get("/api/payments", params={"customer_id": str(customer_id)}, headers=stranger)
    assert snooping.status_code == 404 and snooping.json()["error"]["message"] == "customer not found"
    as_admin = (await client.get("/api/payments", params={"customer_id": str(customer_id)}, headers=admin_headers)).json()
    assert len(as_admin["data"]) == 3


@pytest.mark.parametrize(
    ("moved_to", "answered", "checks"),
    [
        # The reconciler settled it first: the request leaves it as it is and announces nothing more.
        ("status = 'succeeded', gateway_charge_id = 'ch_reconciler', settled_at = now()", "succeeded", 0),
        # The reconciler found it in flight and made it unknown: the request's answer settles it, keeping the check.
        ("status = 'unknown', reconcile_checks = 1", "succeeded", 1),
    ],
)
async def test_a_payment_moved_while_the_gateway_answered_is_settled_from_its_current_row(
    client, customer, add_card, db, monkeypatch, moved_to, answered, checks
):
    customer_id, headers = customer
    await add_card(customer_id, headers)
    real_charge = payments_api.charge_at_gateway

    async def charge_then_move(gateway, payment, token):
        result = await real_charge(gateway, payment, token)
        async with db.sessions() as session, session.begin():
            await session.execute(text(f"UPDATE payments SET {moved_to} WHERE id = :id"), {"id": payment.id})
        return result

    monkeypatch.setattr(payments_api, "charge_at_gateway", charge_then_move)
    response = await client.post("/api/payments", json=payment_body(customer_id), headers=idem(headers))

    assert response.status_code == 201, response.text
    body = response.json()
    async with db.sessions() as session:
        row = await session.get(Payment, uuid.UUID(body["id"]))
        announced = await session.scalar(
            text("SELECT count(*) FROM outbox WHERE body -> 'payload' ->> 'payment_id' = :id"), {"id": body["id"]}
        )
    assert (body["status"], row.status, row.reconcile_checks) == (answered, answered, checks)
    assert body["gateway_charge_id"] == row.gateway_charge_id
    assert announced == (0 if "ch_reconciler" in moved_to else 1)
