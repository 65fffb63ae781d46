"""The plan catalog: admins create and archive, everyone signed in reads; prices are integers, never floats."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.helpers import create_plan


async def test_admin_creates_a_plan_in_minor_units(client, admin_headers):
    plan = await create_plan(client, admin_headers, name="Pro", amount=4999, currency="eur", interval="year", trial_days=14)
    assert (plan["amount"], plan["currency"], plan["interval"], plan["interval_count"]) == (4999, "EUR", "year", 1)
    assert plan["trial_days"] == 14 and plan["archived"] is False


async def test_users_read_plans_but_cannot_create_them(client, admin_headers, user_headers):
    plan = await create_plan(client, admin_headers)
    assert (await client.get(f"/api/plans/{plan['id']}", headers=user_headers)).status_code == 200
    body = {"name": "Mine", "amount": 1, "currency": "USD", "interval": "month"}
    assert (await client.post("/api/plans", json=body, headers=user_headers)).status_code == 403


async def test_anonymous_requests_are_refused(client):
    assert (await client.get("/api/plans")).status_code == 401


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 50.0),
        ("amount", "5000"),
        ("amount", -1),
        ("currency", "XYZ"),
        ("interval", "week"),
        ("interval_count", 0),
        ("trial_days", -3),
        ("name", ""),
    ],
)
async def test_bad_plans_are_refused_naming_the_field(client, admin_headers, field, value):
    body = {"name": "Bad", "amount": 1000, "currency": "USD", "interval": "month", field: value}
    response = await client.post("/api/plans", json=body, headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


async def test_a_plan_price_cannot_be_changed(client, admin_headers):
    plan = await create_plan(client, admin_headers)
    for method in ("put", "patch"):
        response = await client.request(method, f"/api/plans/{plan['id']}", json={"amount": 1}, headers=admin_headers)
        assert response.status_code == 405
    assert (await client.get(f"/api/plans/{plan['id']}", headers=admin_headers)).json()["amount"] == plan["amount"]


async def test_archived_plans_are_listed_only_on_request(client, admin_headers, user_headers):
    plan = await create_plan(client, admin_headers)
    archived = await client.post(f"/api/plans/{plan['id']}/archive", headers=admin_headers)
    assert archived.status_code == 200 and archived.json()["archived"] is True
    again = await client.post(f"/api/plans/{plan['id']}/archive", headers=admin_headers)
    assert again.json()["archived_at"] == archived.json()["archived_at"]

    async def listed(**params) -> set[str]:
        ids, cursor = set(), None
        while True:
            page = (await client.get("/api/plans", params={**params, "limit": 100, **({"cursor": cursor} if cursor else {})}, headers=user_headers)).json()
            ids |= {p["id"] for p in page["data"]}
            if not page["has_more"]:
                return ids
            cursor = page["next_cursor"]

    assert plan["id"] not in await listed()
    assert plan["id"] in await listed(include_archived="true")


async def test_users_cannot_archive_plans(client, admin_headers, user_headers):
    plan = await create_plan(client, admin_headers)
    assert (await client.post(f"/api/plans/{plan['id']}/archive", headers=user_headers)).status_code == 403


async def test_plans_page_with_a_cursor(client, admin_headers):
    created = [await create_plan(client, admin_headers) for _ in range(3)]
    first = (await client.get("/api/plans", params={"limit": 2}, headers=admin_headers)).json()
    assert len(first["data"]) == 2 and first["has_more"] is True
    second = (await client.get("/api/plans", params={"limit": 100, "cursor": first["next_cursor"]}, headers=admin_headers)).json()
    assert not {p["id"] for p in first["data"]} & {p["id"] for p in second["data"]}
    assert created[-1]["id"] in {p["id"] for p in second["data"]}
    assert (await client.get("/api/plans", params={"limit": 101}, headers=admin_headers)).status_code == 422


async def test_unknown_plan_is_404(client, admin_headers):
    assert (await client.get(f"/api/plans/{uuid.uuid4()}", headers=admin_headers)).status_code == 404
