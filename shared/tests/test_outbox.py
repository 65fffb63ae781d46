"""The outbox: state and event commit together; relays publish each row exactly once, whatever happens; an event
no queue took is kept and can be resent."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import pytest
from sqlalchemy import func, insert, select, update

from billing_shared import relay as relay_module
from billing_shared.contracts import CustomerCreated, NotificationSent, PaymentSucceeded
from billing_shared.db import driver_connection
from billing_shared.outbox import RESENT_NOTE, list_unroutable, resend_unroutable
from billing_shared.outbox import main as outbox_cli
from billing_shared.plumbing_tables import outbox_table
from billing_shared.relay import UNROUTABLE_ERROR, OutboxRelay
from billing_shared.testing import EventBus, delete_queues, wait_for

from conftest import SCHEMA, effects

outbox = outbox_table(SCHEMA)


def created(n: int = 0) -> CustomerCreated:
    return CustomerCreated(customer_id=uuid.uuid4(), email=f"c{n}@example.com")


async def count(db, table, *where) -> int:
    async with db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(table).where(*where)))


async def test_state_change_and_outbox_row_commit_together(db, clean):
    async with db.uow() as uow:
        await uow.session.execute(insert(effects).values(id="committed"))
        uow.emit(created())
        await uow.commit()
    assert await count(db, effects) == 1
    assert await count(db, outbox) == 1


async def test_state_change_and_outbox_row_roll_back_together(db, clean):
    with pytest.raises(RuntimeError):
        async with db.uow() as uow:
            await uow.session.execute(insert(effects).values(id="rolled-back"))
            uow.emit(created())
            await uow.flush_outbox()
            raise RuntimeError("the business rule failed after the event was written")
    assert await count(db, effects) == 0
    assert await count(db, outbox) == 0


async def test_an_outbox_row_written_first_still_rolls_back_with_the_change_after_it(db, clean):
    """The outbox rows go in on the driver connection: its statement must be inside the unit of work's
    transaction even when it is the first one sent (SQLAlchemy would begin only with its own first statement)."""
    with pytest.raises(RuntimeError):
        async with db.uow() as uow:
            uow.emit(created())
            await uow.flush_outbox()
            await uow.session.execute(insert(effects).values(id="after-the-event"))
            raise RuntimeError("the business rule failed")
    assert await count(db, outbox) == 0
    assert await count(db, effects) == 0


async def test_many_events_of_one_unit_of_work_are_written_with_their_routing_keys_and_bodies(db, clean):
    async with db.uow() as uow:
        envelopes = [uow.emit(created(n)) for n in range(3)]
        await uow.commit()
    async with db.sessions() as s:
        columns = select(outbox.c.event_id, outbox.c.routing_key, outbox.c.body)
        rows = (await s.execute(columns.order_by(outbox.c.id))).all()
    assert [r.event_id for r in rows] == [e.event_id for e in envelopes]
    assert {r.routing_key for r in rows} == {"customer.created"}
    assert [r.body["payload"]["email"] for r in rows] == ["c0@example.com", "c1@example.com", "c2@example.com"]
    assert rows[0].body["event_id"] == str(envelopes[0].event_id)


async def test_uncommitted_unit_of_work_writes_nothing(db, clean):
    async with db.uow() as uow:
        await uow.session.execute(insert(effects).values(id="forgotten"))
        uow.emit(created())
    assert await count(db, effects) == 0
    assert await count(db, outbox) == 0


async def _emit_many(db, n: int, batch: int = 250) -> list[str]:
    ids = []
    for start in range(0, n, batch):
        async with db.uow() as uow:
            for i in range(start, min(start + batch, n)):
                ids.append(str(uow.emit(created(i)).event_id))
            await uow.commit()
    return ids


def relay_for(db, infra, database_url, **kw) -> OutboxRelay:
    return OutboxRelay(db, infra.amqp_url, "billing.events", database_url=database_url, **kw)


async def test_two_relays_publish_each_row_exactly_once(db, clean, infra, database_url):
    async with EventBus(infra.amqp_url) as bus:
        await bus.record("customer.created")
        ids = await _emit_many(db, 1500)
        relays = [relay_for(db, infra, database_url, batch_size=100) for _ in range(2)]
        for relay in relays:
            await relay.start()
        try:

            async def all_received_and_marked() -> bool:
                # Stopping a relay cancels its batch under way: wait until the last one is marked sent too.
                got = {str(e.event_id) for e in bus.of_type("customer.created")}
                return set(ids) <= got and await count(db, outbox, outbox.c.published_at.is_(None)) == 0

            await wait_for(all_received_and_marked, timeout=60, message="every event received and marked sent")
        finally:
            for relay in relays:
                await relay.stop()
        # Published after every relay's last confirm, into the same queue: once it is in, so is any duplicate.
        marker = await bus.publish(created())
        await bus.wait_for_type("customer.created", where=lambda e: e.event_id == marker.event_id)
        received = [str(e.event_id) for e in bus.of_type("customer.created") if e.event_id != marker.event_id]
        assert sorted(received) == sorted(ids)
        assert await count(db, outbox, outbox.c.published_at.is_(None)) == 0


class CountedWake(asyncio.Event):
    """A relay's wake event that counts how often it was set (only its listener sets it)."""

    def __init__(self) -> None:
        super().__init__()
        self.times_set = 0

    def set(self) -> None:
        self.times_set += 1
        super().set()


def watch(relay: OutboxRelay) -> Callable[[], Awaitable[bool]]:
    """Before the relay starts: a probe true once it sleeps out its poll interval with its listener on, that is once
    the wake its listener sets after LISTEN was taken by a batch that has finished. From then on only a NOTIFY (or
    the poll) wakes it."""
    wake = relay._wake = CountedWake()
    real_publish_batch, running = relay.publish_batch, [0]

    async def publish_batch() -> int:
        running[0] += 1
        try:
            return await real_publish_batch()
        finally:
            running[0] -= 1

    relay.publish_batch = publish_batch

    async def idle_and_listening() -> bool:
        return wake.times_set >= 1 and not wake.is_set() and running[0] == 0

    return idle_and_listening


async def test_relay_wakes_on_commit_within_milliseconds(db, clean, infra, database_url):
    async with EventBus(infra.amqp_url) as bus:
        await bus.record("customer.created")
        relay = relay_for(db, infra, database_url, poll_interval_s=30)  # only NOTIFY can wake it in time
        idle_and_listening = watch(relay)
        await relay.start()
        try:
            await wait_for(idle_and_listening, message="the relay idle, its listener on")
            [event_id] = await _emit_many(db, 1)
            # Far within the poll interval: its NOTIFY woke the relay.
            await bus.wait_for_type("customer.created", timeout=5, where=lambda e: str(e.event_id) == event_id)
        finally:
            await relay.stop()


async def test_relay_survives_broker_connection_loss_and_loses_nothing(db, clean, infra, database_url):
    recorder = f"recorder-{uuid.uuid4().hex[:6]}"
    try:
        async with EventBus(infra.amqp_url) as bus:
            await bus.record("customer.created", durable_queue=recorder)
            relay = relay_for(db, infra, database_url, batch_size=50)
            await relay.start()
            try:
                ids = await _emit_many(db, 300, batch=10)
                subprocess.run(
                    ["rabbitmqctl", "-q", "close_all_connections", "--vhost", infra.vhost, "test: broker loss"],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                ids += await _emit_many(db, 300, batch=10)

                async def all_received_and_marked():
                    # A batch whose confirms died with the connection reaches consumers but stays unmarked
                    # until the relay's channel is restored and re-publishes it: wait for both.
                    got = {str(e.event_id) for e in bus.of_type("customer.created")}
                    unsent = await count(db, outbox, outbox.c.published_at.is_(None))
                    return set(ids) <= got and unsent == 0

                await wait_for(all_received_and_marked, timeout=60,
                               message="every event sent and marked after reconnecting")
            finally:
                await relay.stop()
    finally:
        # Durable and bound to customer.created.#: left behind, it would get a copy of every later test's event.
        await delete_queues(infra.amqp_url, recorder)
    assert await count(db, outbox, outbox.c.published_at.is_(None)) == 0


async def test_a_commit_while_a_batch_is_under_way_wakes_the_next_batch(db, clean, infra, database_url):
    """Its NOTIFY arrives during a batch whose claim may not have seen it: it must not wait for the poll."""
    async with EventBus(infra.amqp_url) as bus:
        await bus.record("customer.created")
        relay = relay_for(db, infra, database_url, poll_interval_s=30)  # only NOTIFY can wake it in time
        idle_and_listening = watch(relay)
        real_publish_batch, armed, during = relay.publish_batch, asyncio.Event(), []

        async def commit_during_the_batch() -> int:
            published = await real_publish_batch()
            if armed.is_set() and published:
                armed.clear()
                woken_before = relay._wake.times_set

                async def woken() -> bool:
                    return relay._wake.times_set > woken_before

                during.extend(await _emit_many(db, 1))
                await wait_for(woken, timeout=5, message="its NOTIFY, in before this batch ends")
            return published

        relay.publish_batch = commit_during_the_batch
        await relay.start()
        try:
            await wait_for(idle_and_listening, message="the relay idle, its listener on")
            armed.set()
            first = await _emit_many(db, 1)
            await bus.wait_for_type("customer.created", timeout=5, where=lambda e: str(e.event_id) in first)
            # Made by the batch that published the first: far within the poll interval, it is published too.
            await bus.wait_for_type("customer.created", timeout=5, where=lambda e: str(e.event_id) in during)
        finally:
            await relay.stop()


async def test_an_event_no_queue_took_is_kept_listed_and_resent_once_its_consumer_is_there(
    db, clean, infra, database_url, capsys, caplog
):
    async with db.uow() as uow:
        # Routed as payment.succeeded.one_off.direct: --type names the event type, not its routing words.
        event_id = uow.emit(PaymentSucceeded(
            payment_id=uuid.uuid4(), customer_id=uuid.uuid4(), amount=100, currency="USD",
        )).event_id
        await uow.commit()
    relay = relay_for(db, infra, database_url)
    await relay.start()
    try:
        unroutable = outbox.c.last_error == UNROUTABLE_ERROR
        await wait_for(lambda: count(db, outbox, unroutable, outbox.c.published_at.is_not(None)),
                       message="the event recorded as unroutable")
        # Nobody gets it until someone resends it: a warning says which event, and how.
        [warning] = [r for r in caplog.records if r.name == relay_module.__name__
                     and r.levelno == logging.WARNING and "resend" in r.getMessage()]
        assert "payment.succeeded" in warning.getMessage() and str(event_id) in warning.getMessage()
        assert f"python -m billing_shared.outbox resend --service {SCHEMA}" in warning.getMessage()

        # The command line runs its own event loop: in a thread here.
        listing = ["unroutable", "--service", SCHEMA, "--database-url", database_url]
        assert await asyncio.to_thread(outbox_cli, listing) == 0
        assert "payment.succeeded\t1\t" in capsys.readouterr().out

        async with EventBus(infra.amqp_url) as bus:
            await bus.record("payment.succeeded")  # the consumer is there now
            assert await resend_unroutable(database_url, SCHEMA, types=["customer.created"]) == 0
            assert await resend_unroutable(database_url, SCHEMA, types=["payment.succeeded"]) == 1
            [received] = await bus.wait_for_type("payment.succeeded")
        assert received.event_id == event_id
        assert await list_unroutable(database_url, SCHEMA) == []
        assert await count(db, outbox, outbox.c.last_error == RESENT_NOTE, outbox.c.published_at.is_not(None)) == 1
    finally:
        await relay.stop()


async def test_a_fact_for_outside_listeners_only_counts_as_sent_with_no_queue_and_no_warning(
    db, clean, infra, database_url, caplog
):
    async with db.uow() as uow:  # no service here consumes notification.sent: no queue is bound for it
        event_id = uow.emit(NotificationSent(
            notification_id=uuid.uuid4(), template="welcome", source_event_id=uuid.uuid4(), recipient="a@example.com",
        )).event_id
        uow.emit(PaymentSucceeded(payment_id=uuid.uuid4(), customer_id=uuid.uuid4(), amount=100, currency="USD"))
        await uow.commit()
    relay = relay_for(db, infra, database_url)
    await relay.start()
    try:
        async def both_published() -> bool:
            return await count(db, outbox, outbox.c.published_at.is_not(None)) == 2

        await wait_for(both_published, message="both events published")
    finally:
        await relay.stop()
    sent = outbox.c.event_id == event_id
    assert await count(db, outbox, sent, outbox.c.last_error.is_(None)) == 1  # purged like any sent event
    assert [row.type for row in await list_unroutable(database_url, SCHEMA)] == ["payment.succeeded"]
    warnings = [r.getMessage() for r in caplog.records
                if r.name == relay_module.__name__ and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "payment.succeeded" in warnings[0]


async def _drain(relay: OutboxRelay) -> None:
    while await relay.publish_batch():
        pass


async def _index_pages_read(db, sql: str, *args) -> int:
    """Index pages a claim reads (EXPLAIN ANALYZE, in a transaction rolled back: its row locks go too)."""
    async with db.sessions() as session:
        driver = await driver_connection(session)
        explained = await driver.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args)
        [plan] = json.loads(explained) if isinstance(explained, str) else explained  # the pool may decode json
        await session.rollback()

    def index_scans(node: dict):
        if node.get("Index Name") == "ix_outbox_unpublished":
            yield node
        for child in node.get("Plans", []):
            yield from index_scans(child)

    [scan] = index_scans(plan["Plan"])
    return scan["Shared Hit Blocks"] + scan["Shared Read Blocks"]


async def test_a_claim_starts_near_the_rows_last_published_not_at_every_row_ever_marked_sent(
    db, clean, infra, database_url
):
    """Marking rows sent leaves their entries in the index of unsent rows until a vacuum (autovacuum is off on
    this machine kind): a claim from the start of that index walks all of them, one from the relay's floor a few."""
    relay = relay_for(db, infra, database_url, poll_interval_s=3600)
    try:
        await _emit_many(db, 20_000, batch=2_000)
        await _drain(relay)
        await _emit_many(db, 1)
        floored = await _index_pages_read(db, relay.claim_sql, relay.batch_size, relay.floor)
        from_start = await _index_pages_read(db, relay.claim_sql, relay.batch_size, 0)
        assert relay.floor > 15_000
        assert floored <= 8 and from_start >= 40, (floored, from_start)  # seen: 5 and 56
        assert await relay.publish_batch() == 1  # and the floored claim found the new row
    finally:
        await relay.stop()


async def test_a_row_committed_late_below_the_floor_is_published_by_the_next_claim_from_the_start(
    db, clean, infra, database_url, monkeypatch
):
    async with EventBus(infra.amqp_url) as bus:
        await bus.record("customer.created")
        # Its loop is not started: the test makes each claim, and moves the relay's clock past the poll interval.
        relay = relay_for(db, infra, database_url, poll_interval_s=3600)
        try:
            ids = await _emit_many(db, 3_000)
            await _drain(relay)  # the first claim from the start, the others from the floor
            async with db.sessions() as session:
                first = await session.scalar(select(outbox.c.id).where(outbox.c.event_id == uuid.UUID(ids[0])))
            assert relay.floor > first
            # As if the first row's transaction had committed only now, long after the others.
            async with db.sessions() as session:
                await session.execute(update(outbox).where(outbox.c.id == first).values(published_at=None))
                await session.commit()

            assert await relay.publish_batch() == 0  # a claim from the floor, above the late row
            later = time.monotonic() + relay.poll_interval_s
            monkeypatch.setattr(relay_module, "time", SimpleNamespace(monotonic=lambda: later))
            assert await relay.publish_batch() == 1  # a poll interval on: a claim from the start, which finds it
            assert await count(db, outbox, outbox.c.published_at.is_(None)) == 0
            # Its second copy (the first went with the others).
            await bus.wait_for_type("customer.created", count=2, where=lambda e: str(e.event_id) == ids[0])
        finally:
            await relay.stop()


@pytest.mark.parametrize("command", ["unroutable", "resend"])
@pytest.mark.parametrize(
    ("database_url", "said"),
    [
        ("postgresql://postgres:s3cret@127.0.0.1:1/x",
         "cannot connect to Postgres at postgresql://postgres@127.0.0.1:1/x: "),
        ("postgresql://postgres:s3cret@127.0.0.1:5432/no_such_database?sslmode=disable",
         'cannot connect to Postgres at postgresql://postgres@127.0.0.1:5432/no_such_database: database "no_such'),
    ],
)
def test_a_database_out_of_reach_or_refusing_us_is_one_line_naming_the_url_without_its_password_and_exit_2(
    command, database_url, said, capsys
):
    assert outbox_cli([command, "--service", SCHEMA, "--database-url", database_url]) == 2
    err = capsys.readouterr().err
    assert f"python -m billing_shared.outbox: {said}" in err
    assert "s3cret" not in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["unroutable", "resend"])
async def test_a_service_with_no_outbox_there_is_said_so_with_exit_2(database_url, command, capsys):
    cli = [command, "--service", "no_such_service", "--database-url", database_url]
    assert await asyncio.to_thread(outbox_cli, cli) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"python -m billing_shared.outbox: no outbox of service no_such_service at {database_url} " in captured.err


async def test_an_outbox_the_role_may_not_read_is_said_so_with_exit_2(infra, database_url, capsys):
    as_invoice = infra.database_url("invoice")  # another service's role: the plumbing schema is not its own
    cli = ["unroutable", "--service", SCHEMA, "--database-url", as_invoice]
    assert await asyncio.to_thread(outbox_cli, cli) == 2
    err = capsys.readouterr().err
    assert f"cannot read the outbox of service {SCHEMA} at {as_invoice.replace(':invoice@', '@')}: permission" in err
