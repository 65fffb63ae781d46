"""Retention of the plumbing tables: what is past its keep goes, in batches; nothing still needed is touched."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from billing_shared import clock
from billing_shared.contracts import CustomerCreated
from billing_shared.db import sql_name
from billing_shared.events import Envelope
from billing_shared.ids import id_floor, id_made_at, new_id
from billing_shared.outbox import RESENT_NOTE, resend_unroutable
from billing_shared.plumbing_tables import idempotency_table, inbox_table, outbox_table
from billing_shared.relay import UNROUTABLE_ERROR, OutboxRelay
from billing_shared.retention import Keep, PlumbingRetention
from billing_shared.testing import EventBus

from conftest import SCHEMA

OUTBOX, INBOX, KEYS = (sql_name(t(SCHEMA)) for t in (outbox_table, inbox_table, idempotency_table))

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)


@given(moments)
def test_an_id_made_at_a_moment_sorts_between_its_floor_and_the_next_milliseconds(at):
    made = id_made_at(at)
    assert made.version == 7
    assert id_floor(at) <= made < id_floor(at + timedelta(milliseconds=1))


@given(moments, moments)
def test_id_floors_order_like_their_moments(a, b):
    a, b = (t.replace(microsecond=t.microsecond // 1000 * 1000) for t in (a, b))
    assert (id_floor(a) < id_floor(b)) == (a < b)


def test_a_fresh_id_is_above_the_floor_of_a_moment_ago():
    assert id_floor(clock.wall_now() - timedelta(seconds=1)) < new_id()


async def execute(db, sql: str, *args):
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        result = await raw.driver_connection.fetch(sql, *args)
        await conn.commit()
        return result


async def add_outbox(
    db, made: datetime, published: datetime | None, *, last_error: str | None = None,
    envelope: Envelope | None = None,
) -> uuid.UUID:
    """An outbox row made at `made`; its body a real envelope (with that event id) if given, else a stub."""
    if envelope is None:
        event_id, routing_key, body = id_made_at(made), "x.y", json.dumps({"type": "x.y"})
    else:
        event_id, routing_key, body = envelope.event_id, envelope.type, envelope.model_dump_json()
    await execute(
        db,
        f"INSERT INTO {OUTBOX} (event_id, routing_key, body, created_at, published_at, last_error) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        event_id, routing_key, body, made, published, last_error,
    )
    return event_id


async def add_inbox(db, made: datetime, handled: datetime) -> uuid.UUID:
    event_id = id_made_at(made)
    await execute(db, f"INSERT INTO {INBOX} (event_id, event_type, handled_at) VALUES ($1, 'x.y', $2)", event_id, handled)
    return event_id


async def add_key(db, scope: str, key: str, created: datetime) -> None:
    await execute(
        db,
        f"INSERT INTO {KEYS} (scope, key, request_hash, status, created_at, updated_at) "
        "VALUES ($1, $2, 'h', 'completed', $3, $3)",
        scope, key, created,
    )


async def test_purge_deletes_what_is_past_its_keep_in_batches_and_keeps_the_rest(db, clean, unique):
    now = clock.wall_now()
    long_ago, lately = now - timedelta(days=40), now - timedelta(hours=1)
    old_published = [await add_outbox(db, long_ago, long_ago + timedelta(seconds=1)) for _ in range(5)]
    never_published = await add_outbox(db, long_ago, None)  # the relay has not sent it: never deleted
    published_late = await add_outbox(db, long_ago, lately)  # made long ago, sent lately: kept its week
    recent = await add_outbox(db, lately, lately)
    old_handled = [await add_inbox(db, long_ago, long_ago) for _ in range(5)]
    handled_late = await add_inbox(db, long_ago, lately)  # an old event delivered (e.g. replayed) lately
    handled_recently = await add_inbox(db, lately, lately)
    for n in range(3):
        await add_key(db, unique, f"old-{n}", now - timedelta(hours=49))
    await add_key(db, unique, "fresh", now - timedelta(hours=23))

    purged = await PlumbingRetention(db, Keep(), batch_size=2).purge()

    assert purged == {"outbox": 5, "inbox": 5, "idempotency_keys": 3}
    outbox_left = {r["event_id"] for r in await execute(db, f"SELECT event_id FROM {OUTBOX}")}
    assert outbox_left == {never_published, published_late, recent}
    inbox_left = {r["event_id"] for r in await execute(db, f"SELECT event_id FROM {INBOX}")}
    assert inbox_left == {handled_late, handled_recently}
    keys_left = {r["key"] for r in await execute(db, f"SELECT key FROM {KEYS} WHERE scope = $1", unique)}
    assert keys_left == {"fresh"}
    assert not set(old_published) & outbox_left and not set(old_handled) & inbox_left


async def test_the_keep_is_configurable_and_a_second_purge_finds_nothing(db, clean):
    now = clock.wall_now()
    two_days_ago = now - timedelta(days=2)
    sent = await add_outbox(db, two_days_ago, two_days_ago)
    handled = await add_inbox(db, two_days_ago, two_days_ago)
    default = PlumbingRetention(db)
    assert (await default.purge())["outbox"] == 0  # a week by default
    short = PlumbingRetention(db, Keep(outbox=timedelta(days=1), inbox=timedelta(days=1)))
    first = await short.purge()
    assert (first["outbox"], first["inbox"]) == (1, 1)
    assert not await execute(db, f"SELECT 1 FROM {OUTBOX} WHERE event_id = $1", sent)
    assert not await execute(db, f"SELECT 1 FROM {INBOX} WHERE event_id = $1", handled)
    again = await short.purge()
    assert (again["outbox"], again["inbox"]) == (0, 0)


async def outbox_row(db, event_id: uuid.UUID):
    rows = await execute(db, f"SELECT published_at, last_error FROM {OUTBOX} WHERE event_id = $1", event_id)
    return rows[0] if rows else None


async def test_an_unroutable_event_is_kept_however_old_while_the_published_one_beside_it_goes(db, clean):
    """No queue took it (its consumer was not up yet): deleting it would lose it before anyone resends it."""
    long_ago = clock.wall_now() - timedelta(days=40)
    published = await add_outbox(db, long_ago, long_ago + timedelta(seconds=1))
    unroutable = await add_outbox(db, long_ago, long_ago + timedelta(seconds=1), last_error=UNROUTABLE_ERROR)

    purged = await PlumbingRetention(db, Keep(), batch_size=1).purge()

    assert purged["outbox"] == 1
    assert await outbox_row(db, published) is None
    assert (await outbox_row(db, unroutable))["last_error"] == UNROUTABLE_ERROR


async def test_an_unroutable_event_resent_and_published_goes_like_any_published_one(
    db, clean, infra, database_url
):
    long_ago = clock.wall_now() - timedelta(days=40)
    envelope = Envelope(
        event_id=id_made_at(long_ago), type="customer.created", occurred_at=long_ago, producer="plumbing",
        payload=CustomerCreated(customer_id=uuid.uuid4(), email="late@example.com").model_dump(mode="json"),
    )
    event_id = await add_outbox(db, long_ago, long_ago + timedelta(seconds=1), last_error=UNROUTABLE_ERROR,
                                envelope=envelope)
    retention = PlumbingRetention(db)
    assert (await retention.purge())["outbox"] == 0

    async with EventBus(infra.amqp_url) as bus:
        await bus.record("customer.created")  # its consumer is up now
        assert await resend_unroutable(database_url, SCHEMA) == 1
        relay = OutboxRelay(db, infra.amqp_url, "billing.events", database_url=database_url)
        try:
            assert await relay.publish_batch() == 1
        finally:
            await relay.stop()
        [received] = await bus.wait_for_type("customer.created")
    assert received.event_id == event_id
    published = await outbox_row(db, event_id)
    assert published["published_at"] is not None and published["last_error"] == RESENT_NOTE
    assert (await retention.purge())["outbox"] == 0  # published just now: it has its week like any other

    # A week on: as if it had been published over a week ago.
    over_a_week_ago = clock.wall_now() - Keep().outbox - timedelta(seconds=1)
    await execute(db, f"UPDATE {OUTBOX} SET published_at = $2 WHERE event_id = $1", event_id, over_a_week_ago)
    assert (await retention.purge())["outbox"] == 1
    assert await outbox_row(db, event_id) is None
