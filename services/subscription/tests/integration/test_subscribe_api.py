"""Subscribing: calendar-correct first periods, trials, the demo body, access rules, idempotency, clean 4xx."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from billing_shared.testing import EventBus

from app.db.models import Subscription
from tests.integration.helpers import create_plan, events_for, idem, period_rows, subscribe


async def count_subscriptions(db, customer_id) -> int:
    async with db.sessions() as session:
        return await session.scalar(select(func.count()).where(Subscription.customer_id == customer_id))


async def test_subscribe_anchors_on_jan_31_and_publishes_created(client, admin_headers, service_env, test_clock, customer_id, user_headers):
    test_clock.set(2024, 1, 31, 10, 30)
    plan = await create_plan(client, admin_headers, name="Pro", amount=3000)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.created")
        sub = await subscribe(client, user_headers, customer_id, plan["id"])
        assert sub["status"] == "active"
        assert sub["current_period_start"] == "2024-01-31T10:30:00Z"
        assert sub["current_period_end"] == "2024-02-29T10:30:00Z"
        (event,) = await events_for(bus, "subscription.created", sub["id"])
    assert event.producer == "subscription"
    assert event.payload.items() >= {
        "customer_id": str(customer_id),
        "plan_id": plan["id"],
        "plan_name": "Pro",
        "amount": 3000,
        "currency": "USD",
        "interval": "month",
        "status": "active",
        "period_start": "2024-01-31T10:30:00Z",
        "period_end": "2024-02-29T10:30:00Z",
        "invoice_id": sub["period_invoice_id"],  # the invoice service makes the period's invoice with this id
    }.items()
    assert sub["period_invoice_id"] is not None


async def test_yearly_plan_from_feb_29_ends_on_feb_28(client, admin_headers, test_clock, customer_id, user_headers):
    test_clock.set(2024, 2, 29)
    plan = await create_plan(client, admin_headers, interval="year", amount=30000)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    assert sub["current_period_end"] == "2025-02-28T00:00:00Z"


async def test_trial_is_a_free_first_period_then_billing_anchors_on_its_end(
    client, admin_headers, service_env, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 3, 1)
    plan = await create_plan(client, admin_headers, trial_days=14)
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("subscription.created")
        sub = await subscribe(client, user_headers, customer_id, plan["id"])
        (event,) = await events_for(bus, "subscription.created", sub["id"])
    assert sub["status"] == "trialing"
    assert sub["trial_end"] == sub["current_period_end"] == "2024-03-15T00:00:00Z"
    assert event.payload["amount"] == 0 and event.payload["trial_end"] == "2024-03-15T00:00:00Z"


async def test_trial_days_in_the_body_override_the_plan(client, admin_headers, test_clock, customer_id, user_headers):
    test_clock.set(2024, 3, 1)
    plan = await create_plan(client, admin_headers, trial_days=14)
    sub = await subscribe(client, user_headers, customer_id, plan["id"], trial_days=0)
    assert sub["status"] == "active" and sub["trial_end"] is None


async def test_a_user_may_shorten_the_plans_trial_but_only_an_admin_may_lengthen_it(
    client, admin_headers, db, test_clock, customer_id, user_headers
):
    test_clock.set(2024, 3, 1)
    plan = await create_plan(client, admin_headers, trial_days=14)
    body = {"customer_id": str(customer_id), "plan_id": plan["id"], "trial_days": 730}
    refused = await client.post("/api/subscriptions", json=body, headers={**user_headers, **idem()})
    assert refused.status_code == 403 and refused.json()["error"]["field"] == "trial_days"
    assert await count_subscriptions(db, customer_id) == 0
    shorter = await subscribe(client, user_headers, customer_id, plan["id"], trial_days=7)
    assert shorter["trial_end"] == "2024-03-08T00:00:00Z"
    granted = await client.post("/api/subscriptions", json=body, headers={**admin_headers, **idem()})
    assert granted.status_code == 201 and granted.json()["trial_end"] == "2026-03-01T00:00:00Z"


async def test_same_key_same_body_replays_and_creates_once(client, admin_headers, db, customer_id, user_headers):
    plan = await create_plan(client, admin_headers)
    headers = {**user_headers, **idem()}
    body = {"customer_id": str(customer_id), "plan_id": plan["id"]}
    first = await client.post("/api/subscriptions", json=body, headers=headers)
    second = await client.post("/api/subscriptions", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert await count_subscriptions(db, customer_id) == 1
    other = await client.post("/api/subscriptions", json={**body, "trial_days": 3}, headers=headers)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_error"


async def test_concurrent_requests_with_one_key_create_once_and_answer_alike(
    client, admin_headers, db, customer_id, user_headers
):
    plan = await create_plan(client, admin_headers)
    headers = {**user_headers, **idem()}
    body = {"customer_id": str(customer_id), "plan_id": plan["id"]}
    answers = await asyncio.gather(*(client.post("/api/subscriptions", json=body, headers=headers) for _ in range(5)))
    assert [a.status_code for a in answers] == [201] * 5
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 4
    assert await count_subscriptions(db, customer_id) == 1


async def test_idempotency_key_is_required(client, admin_headers, db, customer_id, user_headers):
    plan = await create_plan(client, admin_headers)
    body = {"customer_id": str(customer_id), "plan_id": plan["id"]}
    response = await client.post("/api/subscriptions", json=body, headers=user_headers)
    assert response.status_code == 400 and response.json()["error"]["field"] == "Idempotency-Key"
    assert await count_subscriptions(db, customer_id) == 0


async def test_user_cannot_subscribe_another_customer(client, admin_headers, db, user_headers):
    plan = await create_plan(client, admin_headers)
    someone_else = uuid.uuid4()
    body = {"customer_id": str(someone_else), "plan_id": plan["id"]}
    response = await client.post("/api/subscriptions", json=body, headers={**user_headers, **idem()})
    assert response.status_code == 403 and response.json()["error"]["field"] == "customer_id"
    assert await count_subscriptions(db, someone_else) == 0


async def test_admin_subscribes_anyone(client, admin_headers, customer_id):
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, admin_headers, customer_id, plan["id"])
    assert sub["customer_id"] == str(customer_id)


@pytest.mark.parametrize("archived", [False, True])
async def test_unknown_or_archived_plan_is_422_and_nothing_is_written(
    client, admin_headers, db, customer_id, user_headers, archived
):
    plan_id = str(uuid.uuid4())
    if archived:
        plan_id = (await create_plan(client, admin_headers))["id"]
        await client.post(f"/api/plans/{plan_id}/archive", headers=admin_headers)
    body = {"customer_id": str(customer_id), "plan_id": plan_id}
    response = await client.post("/api/subscriptions", json=body, headers={**user_headers, **idem()})
    assert response.status_code == 422
    assert response.json()["error"].items() >= {"field": "plan_id", "code": "plan_archived" if archived else "unknown_plan"}.items()
    assert await count_subscriptions(db, customer_id) == 0


async def test_a_failed_request_frees_its_key_for_a_corrected_retry(client, admin_headers, customer_id, user_headers):
    plan = await create_plan(client, admin_headers)
    headers = {**user_headers, **idem()}
    bad = await client.post("/api/subscriptions", json={"customer_id": str(customer_id), "plan_id": str(uuid.uuid4())}, headers=headers)
    assert bad.status_code == 422
    good = await client.post("/api/subscriptions", json={"customer_id": str(customer_id), "plan_id": plan["id"]}, headers=headers)
    assert good.status_code == 201


class TestDemoBody:
    async def test_admin_finds_or_creates_the_plan_from_a_major_unit_price(self, client, admin_headers, customer_id):
        name = f"Demo {uuid.uuid4().hex[:6]}"
        body = {"customer_id": str(customer_id), "plan_name": name, "price": "49.99", "billing_interval": "monthly"}
        first = await client.post("/api/subscriptions", json=body, headers={**admin_headers, **idem()})
        assert first.status_code == 201, first.text
        assert (first.json()["plan"]["amount"], first.json()["plan"]["currency"]) == (4999, "USD")
        as_number = {**body, "price": 49.99}
        second = await client.post("/api/subscriptions", json=as_number, headers={**admin_headers, **idem()})
        assert second.json()["plan_id"] == first.json()["plan_id"]

    async def test_yearly_and_zero_decimal_currency(self, client, admin_headers, customer_id):
        body = {"customer_id": str(customer_id), "plan_name": "Yen", "price": 1200, "currency": "JPY", "billing_interval": "yearly"}
        response = await client.post("/api/subscriptions", json=body, headers={**admin_headers, **idem()})
        assert response.status_code == 201, response.text
        assert response.json()["plan"].items() >= {"amount": 1200, "currency": "JPY", "interval": "year"}.items()

    async def test_user_picks_an_existing_plan_but_cannot_invent_one(self, client, admin_headers, db, customer_id, user_headers):
        plan = await create_plan(client, admin_headers, amount=1500)
        body = {"customer_id": str(customer_id), "plan_name": plan["name"], "price": "15.00", "billing_interval": "monthly"}
        found = await client.post("/api/subscriptions", json=body, headers={**user_headers, **idem()})
        assert found.status_code == 201 and found.json()["plan_id"] == plan["id"]
        cheaper = await client.post("/api/subscriptions", json={**body, "price": "0.01"}, headers={**user_headers, **idem()})
        assert cheaper.status_code == 422 and cheaper.json()["error"]["field"] == "plan_name"
        assert await count_subscriptions(db, customer_id) == 1

    @pytest.mark.parametrize("price", [9.999, "9.999", "-5", "ten", True, "NaN"])
    async def test_inexact_or_invalid_prices_are_refused(self, client, admin_headers, db, customer_id, price):
        body = {"customer_id": str(customer_id), "plan_name": "X", "price": price, "billing_interval": "monthly"}
        response = await client.post("/api/subscriptions", json=body, headers={**admin_headers, **idem()})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "price"
        assert await count_subscriptions(db, customer_id) == 0

    async def test_plan_id_and_demo_fields_together_are_refused(self, client, admin_headers, customer_id):
        plan = await create_plan(client, admin_headers)
        body = {"customer_id": str(customer_id), "plan_id": plan["id"], "price": "1.00"}
        response = await client.post("/api/subscriptions", json=body, headers={**admin_headers, **idem()})
        assert response.status_code == 422 and response.json()["error"]["field"] == "price"

    async def test_missing_demo_field_is_named(self, client, admin_headers, customer_id):
        body = {"customer_id": str(customer_id), "plan_name": "X", "price": "1.00"}
        response = await client.post("/api/subscriptions", json=body, headers={**admin_headers, **idem()})
        assert response.status_code == 422 and response.json()["error"]["field"] == "billing_interval"


async def test_owner_and_admin_read_a_subscription_others_get_404(client, admin_headers, service_env, customer_id, user_headers):
    plan = await create_plan(client, admin_headers)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    assert (await client.get(f"/api/subscriptions/{sub['id']}", headers=user_headers)).json() == sub
    assert (await client.get(f"/api/subscriptions/{sub['id']}", headers=admin_headers)).status_code == 200
    stranger = service_env.auth(uuid.uuid4())
    assert (await client.get(f"/api/subscriptions/{sub['id']}", headers=stranger)).status_code == 404
    cancel = await client.post(f"/api/subscriptions/{sub['id']}/cancel", headers=stranger)
    assert cancel.status_code == 404


async def test_users_list_only_their_own_subscriptions(client, admin_headers, service_env, customer_id, user_headers):
    plan = await create_plan(client, admin_headers)
    mine = await subscribe(client, user_headers, customer_id, plan["id"])
    other_customer = uuid.uuid4()
    theirs = await subscribe(client, admin_headers, other_customer, plan["id"])
    listed = (await client.get("/api/subscriptions", headers=user_headers)).json()
    assert [s["id"] for s in listed["data"]] == [mine["id"]]
    snooping = await client.get("/api/subscriptions", params={"customer_id": str(other_customer)}, headers=user_headers)
    assert snooping.status_code == 404 and snooping.json()["error"]["message"] == "customer not found"
    as_admin = (await client.get("/api/subscriptions", params={"customer_id": str(other_customer), "status": "active"}, headers=admin_headers)).json()
    assert [s["id"] for s in as_admin["data"]] == [theirs["id"]]


async def test_first_period_row_is_written(client, admin_headers, db, customer_id, user_headers):
    plan = await create_plan(client, admin_headers, amount=1234)
    sub = await subscribe(client, user_headers, customer_id, plan["id"])
    (row,) = await period_rows(db, sub["id"])
    assert (row.period_index, row.amount, row.amount_paid) == (0, 1234, 0)


async def test_openapi_documents_the_demo_body_and_its_major_unit_price(client, admin_headers):
    spec = (await client.get("/api/subscription/openapi.json", headers=admin_headers)).json()
    create = spec["paths"]["/api/subscriptions"]["post"]
    assert "MAJOR units" in create["description"] and "Idempotency-Key" in create["description"]
    assert {"/api/plans", "/api/billing-runs", "/api/subscriptions/stats", "/api/subscriptions/{subscription_id}/pause"} <= set(spec["paths"])
