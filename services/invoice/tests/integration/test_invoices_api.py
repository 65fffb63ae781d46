"""The invoice API: access rules, filters and their errors, void, stats."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from billing_shared.testing import wait_for
from conftest import START


async def test_a_customer_reads_its_own_invoice_and_no_one_elses(billing, client, service_env):
    _, invoice = await billing.subscribe()
    owner = service_env.auth(invoice["customer_id"])
    stranger = service_env.auth(uuid.uuid4())

    mine = await client.get(f"/api/invoices/{invoice['id']}", headers=owner)
    assert mine.status_code == 200 and mine.json()["number"] == invoice["number"]
    theirs = await client.get(f"/api/invoices/{invoice['id']}", headers=stranger)
    assert theirs.status_code == 404
    assert theirs.json()["error"]["code"] == "not_found"


async def test_a_customer_lists_only_its_own_invoices(billing, client, service_env):
    _, mine = await billing.subscribe()
    await billing.subscribe()
    owner = service_env.auth(mine["customer_id"])

    listed = await client.get("/api/invoices", headers=owner)
    assert [i["id"] for i in listed.json()["data"]] == [mine["id"]]
    other = await client.get("/api/invoices", params={"customer_id": str(uuid.uuid4())}, headers=owner)
    assert other.status_code == 404


async def test_listing_filters_by_status_and_pages_with_a_cursor(billing, client, admin_headers):
    customer_id = uuid.uuid4()
    invoices = [(await billing.subscribe(customer_id=customer_id))[1] for _ in range(3)]
    await billing.pay(invoices[0])
    await billing.invoice_when(invoices[0]["id"], lambda i: i["status"] == "paid")

    open_ones = await client.get(
        "/api/invoices", params={"customer_id": str(customer_id), "status": "open"}, headers=admin_headers
    )
    assert [i["id"] for i in open_ones.json()["data"]] == [invoices[1]["id"], invoices[2]["id"]]
    first = (await client.get("/api/invoices", params={"customer_id": str(customer_id), "limit": 2}, headers=admin_headers)).json()
    assert first["has_more"] is True and len(first["data"]) == 2
    rest = await client.get(
        "/api/invoices",
        params={"customer_id": str(customer_id), "limit": 2, "cursor": first["next_cursor"]},
        headers=admin_headers,
    )
    assert [i["id"] for i in rest.json()["data"]] == [invoices[2]["id"]] and rest.json()["has_more"] is False


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "bogus"}, "status"),
        ({"customer_id": "not-a-uuid"}, "customer_id"),
        ({"subscription_id": "42"}, "subscription_id"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"cursor": "nope"}, "cursor"),
    ],
)
async def test_bad_filters_are_a_422_naming_the_field(client, admin_headers, params, field):
    response = await client.get("/api/invoices", params=params, headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


async def test_bad_and_unknown_ids_are_clear_4xx(client, admin_headers):
    malformed = await client.get("/api/invoices/not-a-uuid", headers=admin_headers)
    assert malformed.status_code == 422 and malformed.json()["error"]["field"] == "invoice_id"
    unknown = await client.get(f"/api/invoices/{uuid.uuid4()}", headers=admin_headers)
    assert unknown.status_code == 404
    assert (await client.post(f"/api/invoices/{uuid.uuid4()}/void", headers=admin_headers)).status_code == 404
    assert (await client.get(f"/api/credit_notes/{uuid.uuid4()}", headers=admin_headers)).status_code == 404
    assert (await client.get("/api/credit_notes/xyz", headers=admin_headers)).status_code == 422


async def test_requests_without_a_token_are_401(client):
    assert (await client.get("/api/invoices")).status_code == 401
    assert (await client.get(f"/api/invoices/{uuid.uuid4()}")).status_code == 401


async def test_admin_voids_an_unpaid_invoice_and_it_is_announced(billing, client, admin_headers):
    _, invoice = await billing.subscribe()

    response = await client.post(f"/api/invoices/{invoice['id']}/void", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["amount_due"]) == ("void", 0)
    voided = await billing.event_for("invoice.voided", invoice["id"])
    assert voided.payload["number"] == invoice["number"]
    again = await client.post(f"/api/invoices/{invoice['id']}/void", headers=admin_headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_transition"


async def test_void_after_a_successful_payment_is_refused(billing, client, admin_headers):
    _, invoice = await billing.subscribe()
    await billing.pay(invoice, amount=1000)  # even a partial payment
    await billing.invoice_when(invoice["id"], lambda i: i["amount_paid"] == 1000)

    response = await client.post(f"/api/invoices/{invoice['id']}/void", headers=admin_headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invoice_not_voidable"
    assert (await billing.invoice(invoice["id"]))["status"] == "open"


async def test_only_an_admin_can_void(billing, client, service_env):
    _, invoice = await billing.subscribe()
    owner = service_env.auth(invoice["customer_id"])

    assert (await client.post(f"/api/invoices/{invoice['id']}/void", headers=owner)).status_code == 403


async def test_stats_count_statuses_overdue_and_outstanding_per_currency(billing, client, admin_headers, service_env):
    before = (await client.get("/api/invoices/stats", headers=admin_headers)).json()
    # Finalized long ago, so due long ago: overdue now.
    await billing.subscribe(at=START - timedelta(days=400), currency="EUR", amount=1234)

    async def changed():
        stats = (await client.get("/api/invoices/stats", headers=admin_headers)).json()
        return stats if stats["counts"]["open"] == before["counts"]["open"] + 1 else None

    after = await wait_for(changed)
    assert set(after["counts"]) == {"draft", "open", "paid", "void", "uncollectible"}
    assert after["overdue"] == before["overdue"] + 1
    eur_before = {o["currency"]: o["amount"] for o in before["outstanding"]}.get("EUR", 0)
    assert {o["currency"]: o["amount"] for o in after["outstanding"]}["EUR"] == eur_before + 1234
    user = service_env.auth(uuid.uuid4())
    assert (await client.get("/api/invoices/stats", headers=user)).status_code == 403


async def test_a_customer_sees_only_its_own_credit_notes(client, service_env):
    stranger = service_env.auth(uuid.uuid4())
    listed = await client.get("/api/credit_notes", headers=stranger)
    assert listed.status_code == 200 and listed.json()["data"] == []
    other = await client.get("/api/credit_notes", params={"customer_id": str(uuid.uuid4())}, headers=stranger)
    assert other.status_code == 404
