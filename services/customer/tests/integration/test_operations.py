"""Health, readiness, metrics, body limits and the correlation id that travels with events."""

from __future__ import annotations

import gc
import uuid
from datetime import UTC, datetime, timedelta

import aio_pika

from billing_shared.ids import id_made_at, new_id
from billing_shared.testing import EventBus, running, wait_for


async def test_health_ready_and_metrics(client):
    assert (await client.get("/health")).json()["status"] == "ok"
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    metrics = await client.get("/metrics")
    assert "http_requests_total" in metrics.text


async def test_oversize_body_is_413_and_nothing_is_written(client, admin_headers, unique_email):
    body = b'{"email": "' + unique_email.encode() + b'", "name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = await client.post("/api/customers", content=body, headers={**admin_headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    found = await client.get("/api/customers", params={"email": unique_email}, headers=admin_headers)
    assert found.json()["data"] == []


async def test_correlation_id_travels_from_http_header_into_the_event(client, admin_headers, service_env, unique_email):
    correlation = f"test-{uuid.uuid4().hex}"
    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("customer.created")
        response = await client.post(
            "/api/customers", json={"email": unique_email}, headers={**admin_headers, "X-Correlation-ID": correlation}
        )
        assert response.headers["X-Correlation-ID"] == correlation
        mine = await bus.wait_for_type("customer.created", where=lambda e: e.payload["email"] == unique_email)
        assert [e.correlation_id for e in mine] == [correlation]


async def test_openapi_is_served_under_the_service_prefix_to_authenticated_callers(client, admin_headers):
    assert (await client.get("/api/customer/openapi.json")).status_code == 401
    spec = (await client.get("/api/customer/openapi.json", headers=admin_headers)).json()
    assert "/api/customers" in spec["paths"]


async def test_dead_letters_of_a_service_without_consumers_are_an_empty_list(client, admin_headers):
    response = await client.get("/api/customer/dead-letters", headers=admin_headers)
    assert response.status_code == 200
    assert response.json() == {"data": []}
    replay = await client.post("/api/customer/dead-letters/replay", headers=admin_headers)
    assert replay.json() == {"replayed": 0, "kept": []}


async def test_a_dead_letter_older_than_the_inbox_keeps_is_replayed_only_when_forced(
    client, admin_headers, service_env
):
    # The customer service consumes nothing: its queue and DLQ here stand in for any consumer's.
    old = str(id_made_at(datetime.now(UTC) - timedelta(days=31)))  # INBOX_KEEP_DAYS: 30 by default
    connection = await aio_pika.connect(service_env.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue("customer", durable=True)
        dead = await channel.declare_queue("customer.dlq", durable=True)
        await channel.default_exchange.publish(aio_pika.Message(b"{}", message_id=old), routing_key="customer.dlq")
        try:
            kept = (await client.post("/api/customer/dead-letters/replay", headers=admin_headers)).json()
            assert kept["replayed"] == 0 and [k["event_id"] for k in kept["kept"]] == [old]
            assert 30.9 < kept["kept"][0]["age_days"] < 31.1
            still_dead = await channel.declare_queue("customer.dlq", passive=True)
            assert still_dead.declaration_result.message_count == 1  # kept in the DLQ

            forced = await client.post(
                "/api/customer/dead-letters/replay", params={"force": "true"}, headers=admin_headers
            )
            assert forced.json() == {"replayed": 1, "kept": []}
            letter = await queue.get(timeout=5)
            assert letter.message_id == old
            await letter.ack()
        finally:
            await queue.delete(if_unused=False, if_empty=False)
            await dead.delete(if_unused=False, if_empty=False)


async def test_a_replay_by_event_id_in_the_query_replays_that_letter_alone_and_an_empty_list_nothing(
    client, admin_headers, service_env
):
    """The dashboard tells an operator to replay an old letter by its id with ?force=true: read from the body only,
    the query's id was ignored and every letter was forced back, old ones included."""
    wanted, other = str(new_id()), str(new_id())
    connection = await aio_pika.connect(service_env.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue("customer", durable=True)
        dead = await channel.declare_queue("customer.dlq", durable=True)
        for letter_id in (wanted, other):
            await channel.default_exchange.publish(aio_pika.Message(b"{}", message_id=letter_id), "customer.dlq")
        try:
            empty = await client.post("/api/customer/dead-letters/replay", params={"force": "true"}, json=[],
                                      headers=admin_headers)
            assert empty.status_code == 422 and empty.json()["error"]["field"] == "event_ids"
            one = await client.post("/api/customer/dead-letters/replay",
                                    params={"event_id": wanted.upper(), "force": "true"}, headers=admin_headers)
            assert one.json() == {"replayed": 1, "kept": []}
            letter = await queue.get(timeout=5)
            assert letter.message_id == wanted
            await letter.ack()
            left = await channel.declare_queue("customer.dlq", passive=True)
            assert left.declaration_result.message_count == 1  # the other one stays dead
        finally:
            await queue.delete(if_unused=False, if_empty=False)
            await dead.delete(if_unused=False, if_empty=False)


async def test_request_metrics_are_labelled_by_route_template(client, admin_headers):
    await client.get(f"/api/customers/{uuid.uuid4()}", headers=admin_headers)
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/customers/{customer_id}"' in metrics


async def test_the_plumbing_retention_runs_in_the_service_on_its_own_tables(client):
    """RUN_SCHEDULER is on here: the retention job purges the customer schema's outbox, inbox and keys as the
    customer role at start (and hourly), and says so in the metrics."""

    async def purged_every_table():
        metrics = (await client.get("/metrics")).text
        return all(
            f'plumbing_rows_purged_total{{service="customer",table="{table}"}}' in metrics
            for table in ("outbox", "inbox", "idempotency_keys")
        )

    await wait_for(purged_every_table, timeout=10, message="a first retention pass")


async def test_start_up_leaves_its_objects_out_of_the_garbage_collectors_reach(service_env):
    """What start-up built is frozen once the service is up, so a full collection never walks it again."""
    from app.main import create_app

    gc.unfreeze()  # whatever an earlier app of this test session froze
    assert gc.get_freeze_count() == 0
    async with running(create_app()) as http:
        assert (await http.get("/health")).status_code == 200
        assert gc.get_freeze_count() > 10_000
