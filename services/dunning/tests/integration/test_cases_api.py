"""The dunning API: who sees which cases, filters and pagination, stats, and clear 4xx on bad input."""

from __future__ import annotations

import uuid

import pytest
from dunning_driver import Debt


@pytest.fixture
async def two_customers(dunning, epoch):
    """Customer A with two open cases (one then recovered), customer B with one."""
    a, b = uuid.uuid4(), uuid.uuid4()
    debts = [Debt(customer_id=a), Debt(customer_id=a), Debt(customer_id=b)]
    for debt in debts:
        await dunning.fail(debt, epoch)
    ids = [(await dunning.wait_event("dunning.retry_scheduled", d))[0].payload["case_id"] for d in debts]
    await dunning.succeed(debts[1], epoch)
    await dunning.wait_event("dunning.recovered", debts[1])
    return a, b, ids


async def test_a_user_lists_and_reads_only_its_own_cases(client, service_env, two_customers):
    a, b, (a_open, a_recovered, b_open) = two_customers
    as_a = service_env.auth(a)
    mine = await client.get("/api/dunning/cases", headers=as_a)
    assert mine.status_code == 200
    assert {c["id"] for c in mine.json()["data"]} == {a_open, a_recovered}

    theirs = await client.get("/api/dunning/cases", params={"customer_id": str(b)}, headers=as_a)
    assert theirs.status_code == 404 and theirs.json()["error"]["message"] == "customer not found"

    detail = await client.get(f"/api/dunning/cases/{a_open}", headers=as_a)
    assert detail.status_code == 200
    assert detail.json()["attempts"][0]["failure_code"] == "card_declined"
    assert detail.json()["attempts_allowed"] == 3
    hidden = await client.get(f"/api/dunning/cases/{b_open}", headers=as_a)
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "not_found"
    missing = await client.get(f"/api/dunning/cases/{uuid.uuid4()}", headers=as_a)
    assert missing.status_code == 404


async def test_an_admin_filters_by_customer_and_status(client, admin_headers, two_customers):
    a, b, (a_open, a_recovered, b_open) = two_customers
    by_customer = await client.get("/api/dunning/cases", params={"customer_id": str(a)}, headers=admin_headers)
    assert {c["id"] for c in by_customer.json()["data"]} == {a_open, a_recovered}
    recovered = await client.get(
        "/api/dunning/cases", params={"customer_id": str(a), "status": "recovered"}, headers=admin_headers
    )
    assert [c["id"] for c in recovered.json()["data"]] == [a_recovered]
    other = await client.get(f"/api/dunning/cases/{b_open}", headers=admin_headers)
    assert other.status_code == 200


async def test_cases_are_paginated_with_a_cursor(client, admin_headers, two_customers):
    a, _, (a_open, a_recovered, _) = two_customers
    first = (await client.get("/api/dunning/cases", params={"customer_id": str(a), "limit": 1}, headers=admin_headers)).json()
    assert first["has_more"] is True
    params = {"customer_id": str(a), "limit": 1, "cursor": first["next_cursor"]}
    second = (await client.get("/api/dunning/cases", params=params, headers=admin_headers)).json()
    assert second["has_more"] is False
    assert [c["id"] for c in first["data"] + second["data"]] == sorted([a_open, a_recovered])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "pending"}, "status"),
        ({"customer_id": "not-a-uuid"}, "customer_id"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"cursor": "nope"}, "cursor"),
    ],
)
async def test_bad_filters_are_422_naming_the_field(client, admin_headers, params, field):
    response = await client.get("/api/dunning/cases", params=params, headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


async def test_the_api_needs_a_token_and_admin_endpoints_need_an_admin(client, service_env):
    assert (await client.get("/api/dunning/cases")).status_code == 401
    user = service_env.auth(uuid.uuid4())
    assert (await client.get("/api/dunning/stats", headers=user)).status_code == 403
    assert (await client.post("/api/dunning/runs", json={}, headers=user)).status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"as_of": "yesterday"}, "as_of"),
        ({"as_of": "9999-12-31T23:00:00-05:00"}, "as_of"),  # past the year 9999 once in UTC
        ({"as_of": "2100-01-01T00:00:00"}, "as_of"),  # no zone: which 2100-01-01 would be a guess
        # Past the horizon (200 years in these tests, 10 by default): a typo's run would give up at once on every
        # case waiting for a new card.
        ({"as_of": "2262-03-01T00:00:00Z"}, "as_of"),
        ({"as_of": "2100-01-01T00:00:00Z", "dry_run": True}, "dry_run"),
    ],
)
async def test_a_bad_run_request_is_422_and_runs_nothing(client, admin_headers, body, field):
    response = await client.post("/api/dunning/runs", json=body, headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


async def test_stats_count_cases_by_status_and_the_recovery_rate(client, admin_headers, two_customers):
    stats = (await client.get("/api/dunning/stats", headers=admin_headers)).json()
    assert stats["open"] >= 2 and stats["recovered"] >= 1
    assert stats["recovery_rate"] == pytest.approx(stats["recovered"] / (stats["recovered"] + stats["exhausted"]))
