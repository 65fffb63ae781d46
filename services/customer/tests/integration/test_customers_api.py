"""The customer API: validation, uniqueness, access rules and events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from billing_shared import clock
from billing_shared.testing import EventBus, wait_for


async def create(client, headers, **body):
    return await client.post("/api/customers", json=body, headers=headers)


async def test_create_customer_normalises_email_and_publishes_created(client, admin_headers, service_env):
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("customer.created")
        email = f"Mixed.Case-{uuid.uuid4().hex[:6]}@Example.COM"
        response = await create(client, admin_headers, email=email, name="Test User")
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["email"] == email.lower()
        assert body["role"] == "user"
        stored = await client.get(f"/api/customers/{body['id']}", headers=admin_headers)
        assert stored.json() == body  # the stored row, server defaults (created_at) included
        events = await bus.wait_for_type("customer.created", where=lambda e: e.payload["customer_id"] == body["id"])
        assert [(e.producer, e.payload["email"]) for e in events] == [("customer", email.lower())]


@pytest.mark.parametrize("email", ["not-an-email", "", "a@", "@b.com", "x" * 400 + "@example.com"])
async def test_bad_emails_are_refused_naming_the_field(client, admin_headers, email):
    response = await create(client, admin_headers, email=email)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "email"


async def test_duplicate_email_is_409_whatever_its_case(client, admin_headers, unique_email):
    assert (await create(client, admin_headers, email=unique_email)).status_code == 201
    again = await create(client, admin_headers, email=unique_email.upper())
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "email_taken"


async def test_concurrent_creates_and_updates_to_one_email_are_one_success_and_409s(client, admin_headers, caplog):
    email = f"race-{uuid.uuid4().hex[:10]}@example.com"
    created = await asyncio.gather(*(create(client, admin_headers, email=email, name="Jane Secret") for _ in range(6)))
    assert sorted(r.status_code for r in created) == [201] + [409] * 5

    target = f"race-{uuid.uuid4().hex[:10]}@example.com"
    others = [(await create(client, admin_headers, email=f"{uuid.uuid4().hex}@example.com")).json()["id"]
              for _ in range(6)]
    updated = await asyncio.gather(*(
        client.patch(f"/api/customers/{customer_id}", json={"email": target}, headers=admin_headers)
        for customer_id in others
    ))
    assert sorted(r.status_code for r in updated) == [200] + [409] * 5
    assert all(r.json()["error"]["code"] == "email_taken" for r in updated if r.status_code == 409)
    assert not [r for r in caplog.records if email in r.getMessage() or target in r.getMessage()]


async def test_unknown_fields_are_refused_and_nothing_is_written(client, admin_headers, unique_email):
    response = await create(client, admin_headers, email=unique_email, is_superuser=True)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "is_superuser"
    listing = await client.get("/api/customers", params={"email": unique_email}, headers=admin_headers)
    assert listing.json()["data"] == []


async def test_malformed_json_is_a_clear_4xx(client, admin_headers):
    response = await client.post(
        "/api/customers", content=b"{not json", headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_user_reading_another_customer_gets_404(client, admin_headers, service_env, unique_email):
    other = (await create(client, admin_headers, email=unique_email)).json()
    me = (await create(client, admin_headers, email="me-" + unique_email)).json()
    mine = await client.get(f"/api/customers/{me['id']}", headers=service_env.auth(me["id"]))
    assert mine.status_code == 200
    theirs = await client.get(f"/api/customers/{other['id']}", headers=service_env.auth(me["id"]))
    assert theirs.status_code == 404


async def test_user_cannot_create_customers_or_make_itself_admin(client, admin_headers, service_env, unique_email):
    me = (await create(client, admin_headers, email=unique_email)).json()
    user = service_env.auth(me["id"])
    assert (await create(client, user, email="x-" + unique_email, role="admin")).status_code == 403
    promote = await client.patch(f"/api/customers/{me['id']}", json={"role": "admin"}, headers=user)
    assert promote.status_code == 403
    after = await client.get(f"/api/customers/{me['id']}", headers=user)
    assert after.json()["role"] == "user"


async def test_patch_updates_and_publishes_updated(client, admin_headers, service_env, unique_email):
    me = (await create(client, admin_headers, email=unique_email)).json()
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("customer.updated")
        response = await client.patch(
            f"/api/customers/{me['id']}", json={"name": "New Name"}, headers=service_env.auth(me["id"])
        )
        assert response.status_code == 200
        assert response.json()["name"] == "New Name"
        events = await bus.wait_for_type("customer.updated", where=lambda e: e.payload["customer_id"] == me["id"])
        assert [e.payload["name"] for e in events] == ["New Name"]


async def test_changes_served_by_a_replica_whose_clock_runs_behind_still_come_after_the_create(
    client, admin_headers, service_env, unique_email
):
    """Services keep the newest fact of a customer by its event's occurred_at. An email fixed right after the create
    by a replica whose clock is a second behind must still be the newer fact, or their copies keep the old address."""
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("customer.created", "customer.updated")
        me = (await create(client, admin_headers, email=unique_email)).json()
        behind = datetime.now(UTC) - timedelta(seconds=1)
        clock.set_source(lambda _customer_id: behind)
        try:
            for change in ({"email": "fixed-" + unique_email}, {"name": "Second change"}):
                response = await client.patch(f"/api/customers/{me['id']}", json=change, headers=admin_headers)
                assert response.status_code == 200, response.text
        finally:
            clock.set_source(None)

        def mine(envelope):
            return envelope.payload["customer_id"] == me["id"]

        [created] = await bus.wait_for_type("customer.created", where=mine)
        updates = await bus.wait_for_type("customer.updated", count=2, where=mine)
    updates.sort(key=lambda e: e.payload["name"])  # "" (the email fix) before "Second change"
    instants = [created.occurred_at, *(e.occurred_at for e in updates)]
    assert instants == sorted(instants) and len(set(instants)) == 3
    stored = (await client.get(f"/api/customers/{me['id']}", headers=admin_headers)).json()
    assert datetime.fromisoformat(stored["updated_at"]) == instants[-1]


async def test_list_customers_paginates_with_a_cursor(client, admin_headers):
    tag = uuid.uuid4().hex[:8]
    for i in range(5):
        await create(client, admin_headers, email=f"page{i}-{tag}@example.com", name=f"Page {tag}")
    seen, cursor = [], None
    while True:
        params = {"q": tag, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/customers", params=params, headers=admin_headers)).json()
        seen += [c["email"] for c in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert sorted(seen) == sorted(f"page{i}-{tag}@example.com" for i in range(5))


async def test_bad_cursor_and_limit_are_422(client, admin_headers):
    assert (await client.get("/api/customers?cursor=nope", headers=admin_headers)).status_code == 422
    assert (await client.get("/api/customers?limit=0", headers=admin_headers)).status_code == 422
    assert (await client.get("/api/customers?limit=1000", headers=admin_headers)).status_code == 422


async def test_listing_is_admin_only(client, service_env):
    response = await client.get("/api/customers", headers=service_env.auth(uuid.uuid4()))
    assert response.status_code == 403


async def test_event_and_state_commit_together(client, admin_headers, service_env, unique_email):
    """A failed create leaves neither a customer row nor an outbox row behind."""
    from app.main import create_app  # noqa: F401  (the app is running through `client`)

    runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
    async with runtime.db.sessions() as session:
        before = await session.scalar(text("SELECT count(*) FROM outbox"))
    await create(client, admin_headers, email=unique_email)
    await create(client, admin_headers, email=unique_email)  # duplicate: rolled back
    async with runtime.db.sessions() as session:
        after = await session.scalar(text("SELECT count(*) FROM outbox"))
        customers = await session.scalar(
            text("SELECT count(*) FROM customers WHERE email = :e"), {"e": unique_email}
        )
    assert customers == 1
    assert after - before == 1


async def test_nul_bytes_in_queries_and_bodies_are_422_not_500(client, admin_headers, unique_email):
    assert (await client.get("/api/customers?q=a%00b", headers=admin_headers)).status_code == 422
    response = await client.post("/api/customers", json={"email": unique_email, "name": "nul\u0000name"},
                                 headers=admin_headers)
    assert response.status_code == 422
