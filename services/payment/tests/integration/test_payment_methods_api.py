"""Payment methods: cards checked and tokenized, only the token and display details kept; list, default, detach."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from app.db.models import PaymentMethod
from billing_shared.testing import EventBus
from tests.conftest import AMEX_CARD, SUCCESS_CARD, card_body, events_about, idem


def methods_url(customer_id) -> str:
    return f"/api/customers/{customer_id}/payment_methods"


async def count_methods(db, customer_id) -> int:
    async with db.sessions() as session:
        return await session.scalar(select(func.count()).where(PaymentMethod.customer_id == customer_id))


async def test_first_card_becomes_default_and_publishes_added(client, customer, service_env, payment_app):
    customer_id, headers = customer
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment_method.added")
        response = await client.post(methods_url(customer_id), json=card_body("4242 4242 4242 4242"), headers=headers)
        assert response.status_code == 201, response.text
        method = response.json()
        assert (method["brand"], method["last4"], method["is_default"]) == ("visa", "4242", True)
        assert "card_number" not in method and "cvc" not in method and "gateway_token" not in method
        events = await events_about(bus, "payment_method.added", customer_id=customer_id)
        assert events[0].payload["payment_method_id"] == method["id"]
        assert events[0].payload["is_default"] is True


async def test_same_card_twice_has_the_same_fingerprint(client, customer, add_card):
    customer_id, headers = customer
    first = await add_card(customer_id, headers)
    second = await add_card(customer_id, headers, number="4242-4242-4242-4242")
    other = await add_card(customer_id, headers, number="5555555555554444")
    assert first["fingerprint"] == second["fingerprint"] != other["fingerprint"]
    assert second["is_default"] is False and other["is_default"] is False


async def test_luhn_failure_of_the_demo_number_is_422_naming_the_field_without_echoing_it(client, customer, db):
    customer_id, headers = customer
    response = await client.post(methods_url(customer_id), json=card_body("1234567890123456"), headers=headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_card", "card_number")
    assert "Luhn" in error["message"]
    assert "1234567890123456" not in response.text
    assert await count_methods(db, customer_id) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (card_body(exp_month=13), "exp_month"),
        (card_body(years_ahead=-1), "exp_year"),
        (card_body(cvc="12"), "cvc"),
        (card_body(AMEX_CARD, cvc="123"), "cvc"),
        ({**card_body(), "exp_month": "12"}, "exp_month"),
        ({**card_body(), "card_number": 4242424242424242}, "card_number"),
        ({**card_body(), "nickname": "x"}, "nickname"),
    ],
)
async def test_bad_cards_are_422_naming_the_field_and_nothing_is_stored(client, customer, db, body, field):
    customer_id, headers = customer
    response = await client.post(methods_url(customer_id), json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert SUCCESS_CARD not in response.text
    assert await count_methods(db, customer_id) == 0


async def test_a_user_cannot_add_list_or_detach_another_customers_cards(client, customer, add_card, service_env):
    customer_id, headers = customer
    method = await add_card(customer_id, headers)
    stranger = service_env.auth(uuid.uuid4())
    assert (await client.post(methods_url(customer_id), json=card_body(), headers=stranger)).status_code == 404
    assert (await client.get(methods_url(customer_id), headers=stranger)).status_code == 404
    assert (await client.delete(f"{methods_url(customer_id)}/{method['id']}", headers=stranger)).status_code == 404
    assert (await client.get(methods_url(customer_id), headers=headers)).json()["data"][0]["id"] == method["id"]


async def test_admin_adds_a_card_for_any_customer(client, admin_headers, add_card):
    customer_id = uuid.uuid4()
    method = await add_card(customer_id, admin_headers)
    assert method["customer_id"] == str(customer_id)


async def test_set_default_moves_the_default_and_detach_removes_from_the_list(client, customer, add_card):
    customer_id, headers = customer
    first = await add_card(customer_id, headers)
    second = await add_card(customer_id, headers, number="5555555555554444")
    made = await client.post(f"{methods_url(customer_id)}/{second['id']}/default", headers=headers)
    assert made.status_code == 200 and made.json()["is_default"] is True
    listing = {m["id"]: m["is_default"] for m in (await client.get(methods_url(customer_id), headers=headers)).json()["data"]}
    assert listing == {first["id"]: False, second["id"]: True}

    detached = await client.delete(f"{methods_url(customer_id)}/{second['id']}", headers=headers)
    assert detached.status_code == 200 and detached.json()["detached_at"] is not None
    remaining = (await client.get(methods_url(customer_id), headers=headers)).json()["data"]
    assert [m["id"] for m in remaining] == [first["id"]]
    again = await client.delete(f"{methods_url(customer_id)}/{second['id']}", headers=headers)
    assert again.status_code == 404


async def test_list_is_cursor_paginated(client, customer, add_card):
    customer_id, headers = customer
    added = [await add_card(customer_id, headers) for _ in range(3)]
    first = (await client.get(methods_url(customer_id), params={"limit": 2}, headers=headers)).json()
    assert first["has_more"] is True and len(first["data"]) == 2
    rest = (await client.get(methods_url(customer_id), params={"limit": 2, "cursor": first["next_cursor"]},
                             headers=headers)).json()
    assert [m["id"] for m in first["data"] + rest["data"]] == [m["id"] for m in added]
    assert rest["has_more"] is False


async def test_optional_idempotency_key_replays_instead_of_adding_twice(client, customer, db):
    customer_id, headers = customer
    keyed = idem(headers)
    first = await client.post(methods_url(customer_id), json=card_body(), headers=keyed)
    again = await client.post(methods_url(customer_id), json=card_body(), headers=keyed)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert await count_methods(db, customer_id) == 1
