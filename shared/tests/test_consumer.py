"""The consumer: a redelivered event changes nothing; a poison message is dead-lettered, the rest flow on."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, insert, select

from billing_shared import consumer as consumer_module
from billing_shared import dlq
from billing_shared.amqp import envelope_message, retry_queue_name
from billing_shared.consumer import HANDLED, Awaiting, EventConsumer, Outage, Retryable, batchable
from billing_shared.db import Database
from billing_shared.contracts import CustomerCreated, CustomerUpdated, PaymentSucceeded
from billing_shared.events import Envelope
from billing_shared.plumbing_tables import outbox_table
from billing_shared.testing import EventBus, delete_queues, wait_for

from conftest import SCHEMA, effects

made: list[EventConsumer] = []  # by the test running: their queues are deleted after it


@pytest.fixture(autouse=True)
async def delete_the_consumers_queues(infra):
    """A consumer's queues are durable, and bound to customer.created.# and the like: left behind, they would get
    a copy of every such event later tests publish (tens of thousands), for the rest of the session."""
    yield
    queues = {
        name
        for consumer in made
        for name in (
            consumer.service,
            f"{consumer.service}.dlq",
            # its delay queues, as EventConsumer.start declares them
            *(retry_queue_name(consumer.service, delay)
              for delay in [*consumer._retry_delays, consumer.redelivery_backoff_max_s]),
        )
    }
    made.clear()
    await delete_queues(infra.amqp_url, *sorted(queues))


def consumer_for(db, infra, service: str, handlers, **kw) -> EventConsumer:
    options = dict(prefetch=16, delivery_limit=2, retry_attempts=2, retry_initial_s=0.01, retry_max_s=0.02,
                   redelivery_backoff_s=0.05, redelivery_backoff_max_s=0.1)
    options.update(kw)
    consumer = EventConsumer(
        db,
        service=service,
        amqp_url=infra.amqp_url,
        exchange="billing.events",
        dead_letter_exchange="billing.dlx",
        handlers=handlers,
        **options,
    )
    made.append(consumer)
    return consumer


async def record_effect(envelope: Envelope, uow) -> None:
    await uow.session.execute(insert(effects).values(id=str(envelope.event_id)))


async def effect_count(db, *ids: str) -> int:
    async with db.sessions() as s:
        stmt = select(func.count()).select_from(effects)
        if ids:
            stmt = stmt.where(effects.c.id.in_(ids))
        return int(await s.scalar(stmt))


async def dead_letters(infra, service: str, what: str, timeout: float = 20) -> list:
    """The service's dead letters, once there are some."""

    async def listed() -> list:
        return await dlq.list_dead_letters(infra.amqp_url, service)

    return await wait_for(listed, timeout=timeout, message=what)


def event() -> CustomerCreated:
    return CustomerCreated(customer_id=uuid.uuid4(), email="x@example.com")


async def test_same_event_delivered_three_times_is_applied_once(db, clean, infra, unique):
    calls: list[str] = []

    async def counting(envelope: Envelope, uow) -> None:
        calls.append(str(envelope.event_id))  # the effects table's key alone would absorb a second run
        await record_effect(envelope, uow)

    consumer = consumer_for(db, infra, f"svc-{unique}", {"customer.created": counting})
    await consumer.start()
    try:
        async with EventBus(infra.amqp_url) as bus:
            event_id = uuid.uuid4()
            for _ in range(3):
                await bus.publish(event(), event_id=event_id)
            marker = await bus.publish(event())  # published last: once it is applied, the copies were seen

            async def marker_applied():
                return await effect_count(db, str(marker.event_id)) == 1

            await wait_for(marker_applied)
        assert await effect_count(db, str(event_id)) == 1
        assert calls.count(str(event_id)) == 1
    finally:
        await consumer.stop()


async def test_unknown_payload_fields_are_ignored(db, clean, infra, unique):
    consumer = consumer_for(db, infra, f"svc-{unique}", {"customer.created": record_effect})
    await consumer.start()
    try:
        async with EventBus(infra.amqp_url) as bus:
            payload = {**event().model_dump(mode="json"), "added_in_v2": {"anything": 1}}
            env = Envelope(type="customer.created", producer="future", payload=payload, brand_new_field=True)
            await bus.publish(env)
            assert env.payload_as(CustomerCreated).email == "x@example.com"

            async def applied():
                return await effect_count(db, str(env.event_id)) == 1

            await wait_for(applied)
    finally:
        await consumer.stop()


async def test_a_handler_under_way_when_the_broker_drops_the_connection_commits_and_acts_once(
    db, clean, infra, unique
):
    """aiormq cancels a channel's consumer callbacks when its connection closes. A handler cancelled after its
    outside effect (an email handed to SMTP) but before its COMMIT would repeat that effect on redelivery."""
    service = f"svc-{unique}"
    outside_effects: list[str] = []
    under_way, release = asyncio.Event(), asyncio.Event()

    async def slow_mailer(envelope: Envelope, uow) -> None:
        outside_effects.append(str(envelope.event_id))  # the SMTP accept: cannot be rolled back
        under_way.set()
        await release.wait()
        await record_effect(envelope, uow)

    consumer = consumer_for(db, infra, service, {"customer.created": slow_mailer})
    await consumer.start()
    try:
        async with EventBus(infra.amqp_url) as bus:
            sent = await bus.publish(event())
        await asyncio.wait_for(under_way.wait(), 10)
        await asyncio.to_thread(
            subprocess.run, ["rabbitmqctl", "-q", "close_all_connections", "-p", infra.vhost, "test: broker drop"],
            check=True, capture_output=True,
        )
        release.set()

        def outcomes(outcome: str) -> float:
            return HANDLED.labels(service, "customer.created", outcome)._value.get()

        async def redelivered_and_skipped():  # the ack died with the channel: the broker delivers it again
            return outcomes("duplicate") >= 1

        await wait_for(redelivered_and_skipped, timeout=30, message="the redelivered copy, skipped by the inbox")
        assert await effect_count(db, str(sent.event_id)) == 1
        assert outside_effects == [str(sent.event_id)]
        assert outcomes("handled") == 1
    finally:
        await consumer.stop()


async def test_after_a_reconnect_no_more_than_prefetch_events_are_applied_at_once(db, clean, infra, unique):
    """The new channel is delivered `prefetch` more messages (here copies of the two still under way) while the
    old handlers finish: each copy would take a database connection and wait on its inbox row."""
    service = f"svc-{unique}"
    under_way, release = asyncio.Event(), asyncio.Event()
    running: list[str] = []

    async def slow(envelope: Envelope, uow) -> None:
        running.append(str(envelope.event_id))
        if len(running) >= 2:
            under_way.set()
        await release.wait()
        await record_effect(envelope, uow)

    consumer = consumer_for(db, infra, service, {"customer.created": slow}, prefetch=2)
    delivered = 0
    on_message = consumer._on_message

    async def counting(message) -> None:
        nonlocal delivered
        delivered += 1
        await on_message(message)

    consumer._on_message = counting
    await consumer.start()
    pool = db.engine.sync_engine.pool
    try:
        async with EventBus(infra.amqp_url) as bus:
            sent = [await bus.publish(event()) for _ in range(2)]
        await asyncio.wait_for(under_way.wait(), 10)
        await asyncio.to_thread(
            subprocess.run, ["rabbitmqctl", "-q", "close_all_connections", "-p", infra.vhost, "test: broker drop"],
            check=True, capture_output=True,
        )

        async def redelivered() -> bool:
            return delivered >= 4

        await wait_for(redelivered, timeout=30, message="both messages delivered again on the new channel")
        in_use = []
        for _ in range(10):  # the copies may be on their way to a connection: look for a moment
            in_use.append(pool.checkedout())
            await asyncio.sleep(0.05)
        release.set()

        async def applied() -> bool:
            return await effect_count(db, *(str(e.event_id) for e in sent)) == 2

        await wait_for(applied, timeout=30, message="both events applied once")
        assert max(in_use) <= 2  # the two old handlers' connections; the copies wait for a slot
    finally:
        release.set()
        await consumer.stop()


async def test_poison_message_is_dead_lettered_while_later_messages_flow(db, clean, infra, unique):
    service = f"svc-{unique}"
    poison_ids: set[str] = set()
    fixed = False

    async def fragile(envelope: Envelope, uow) -> None:
        if str(envelope.event_id) in poison_ids and not fixed:
            raise RuntimeError("handler bug")
        await record_effect(envelope, uow)

    consumer = consumer_for(db, infra, service, {"customer.created": fragile}, delivery_limit=2)
    await consumer.start()
    try:
        async with EventBus(infra.amqp_url) as bus:
            poison_id = uuid.uuid4()
            poison_ids.add(str(poison_id))  # before publishing: the consumer may see it at once
            poison = await bus.publish(event(), event_id=poison_id)
            healthy = [await bus.publish(event()) for _ in range(20)]

            async def healthy_applied():
                return await effect_count(db, *(str(e.event_id) for e in healthy)) == 20

            await wait_for(healthy_applied, timeout=20)

            letters = await dead_letters(infra, service, "the poison message in the DLQ", timeout=20)
            assert [letter.event_id for letter in letters] == [str(poison.event_id)]
            assert letters[0].reason == "delivery_limit"
            assert letters[0].deaths == 3  # the first try and delivery_limit (2) later ones
            assert await effect_count(db, str(poison.event_id)) == 0

            fixed = True
            assert await dlq.replay_dead_letters(infra.amqp_url, service) == 1

            async def replayed_applied():
                return await effect_count(db, str(poison.event_id)) == 1

            await wait_for(replayed_applied, timeout=20)
            assert await dlq.list_dead_letters(infra.amqp_url, service) == []
    finally:
        await consumer.stop()


async def test_an_outage_is_waited_out_past_the_delivery_limit_then_dead_lettered_once_it_lasts_too_long(
    db, clean, infra, unique
):
    service = f"svc-{unique}"
    tries: list[float] = []

    async def smtp_down(envelope: Envelope, uow) -> None:
        tries.append(time.monotonic())
        raise Outage("SMTP unavailable")

    consumer = consumer_for(db, infra, service, {"customer.created": smtp_down}, delivery_limit=2, outage_retry_s=1.5)
    await consumer.start()
    try:
        async with EventBus(infra.amqp_url) as bus:
            down = await bus.publish(event())

            letters = await dead_letters(infra, service, "the message in the DLQ", timeout=20)
        assert [(letter.event_id, letter.reason) for letter in letters] == [(str(down.event_id), "delivery_limit")]
        # Far more tries than delivery_limit (2) allows a failing message, none of them retried in-process (that
        # would be two calls within milliseconds), until the outage had lasted outage_retry_s.
        assert len(tries) > 3 + 2 and tries[-1] - tries[0] >= 1.5
        assert min(b - a for a, b in zip(tries, tries[1:])) >= 0.05
    finally:
        await consumer.stop()


async def test_an_event_awaiting_another_waits_past_the_delivery_limit_but_only_awaiting_retry_s(
    db, clean, infra, unique
):
    service = f"svc-{unique}"
    tries: list[float] = []

    async def customer_not_known_yet(envelope: Envelope, uow) -> None:
        tries.append(time.monotonic())
        raise Awaiting("its customer.created has not come (and never will: a typo)")

    consumer = consumer_for(db, infra, service, {"customer.created": customer_not_known_yet}, delivery_limit=2,
                            outage_retry_s=3600, awaiting_retry_s=1.0)
    await consumer.start()
    try:
        async with EventBus(infra.amqp_url) as bus:
            waiting = await bus.publish(event())
            letters = await dead_letters(infra, service, "the message in the DLQ", timeout=20)
        assert [letter.event_id for letter in letters] == [str(waiting.event_id)]
        # More tries than delivery_limit (2) allows, for awaiting_retry_s, not the hour of an outage.
        assert len(tries) > 3 + 1 and 1.0 <= tries[-1] - tries[0] < 10
    finally:
        await consumer.stop()


async def test_a_replayed_outage_letter_waits_out_a_new_outage_from_its_own_start(db, clean, infra, unique):
    service = f"svc-{unique}"
    outage = {"on": True, "tries_after_replay": 0}

    async def smtp(envelope: Envelope, uow) -> None:
        if outage["on"]:
            raise Outage("SMTP unavailable")
        outage["tries_after_replay"] += 1
        if outage["tries_after_replay"] <= 4:  # down again for a moment: past the delivery limit's 3 tries
            raise Outage("SMTP unavailable again")
        await record_effect(envelope, uow)

    consumer = consumer_for(db, infra, service, {"customer.created": smtp}, delivery_limit=2, outage_retry_s=1.0)
    await consumer.start()
    try:
        async with EventBus(infra.amqp_url) as bus:
            letter = await bus.publish(event())

            await dead_letters(infra, service, "the message in the DLQ after the first outage", timeout=20)
            await asyncio.sleep(1.0)  # the first outage began over outage_retry_s before the replay
            outage["on"] = False
            assert await dlq.replay_dead_letters(infra.amqp_url, service) == 1

            async def applied() -> bool:
                return await effect_count(db, str(letter.event_id)) == 1

            await wait_for(applied, timeout=20, message="the replayed event applied after the second outage")
        assert outage["tries_after_replay"] == 5
        assert await dlq.list_dead_letters(infra.amqp_url, service) == []
    finally:
        await consumer.stop()


class PostgresSwitch:
    """A local port in front of Postgres that refuses connections while down (a restart, a failover) and
    forwards them while up; going down also cuts the connections it carries."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._carried: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._carry, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._carried):
            writer.close()

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._carried |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()
                self._carried.discard(sink)

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def test_events_consumed_while_the_database_is_down_wait_for_it_instead_of_going_to_the_dlq(
    database_url, db, clean, infra, unique
):
    service = f"svc-{unique}"
    switch = PostgresSwitch()
    await switch.up()
    behind_switch = Database(database_url.replace("127.0.0.1:5432", f"127.0.0.1:{switch.port}"), SCHEMA,
                             producer="plumbing")
    # Two later tries (0.05 s, 0.1 s apart) before the DLQ: a database restart lasts far longer than that.
    consumer = consumer_for(behind_switch, infra, service, {"customer.created": record_effect}, delivery_limit=2,
                            outage_retry_s=60)
    await consumer.start()
    try:
        async with EventBus(infra.amqp_url) as bus:
            before = await bus.publish(event())
            await wait_for(lambda: effect_count(db, str(before.event_id)), message="the event before the outage")
            failed = HANDLED.labels(service, "customer.created", "failed")
            failed_before = failed._value.get()
            await switch.down()
            during = await bus.publish(event())

            async def tried_past_the_delivery_limit() -> bool:
                return failed._value.get() - failed_before >= 2 * (2 + 1)

            await wait_for(tried_past_the_delivery_limit, timeout=20, message="tries while the database is down")
            assert await dlq.list_dead_letters(infra.amqp_url, service) == []
            await switch.up()

            async def applied() -> bool:
                return await effect_count(db, str(during.event_id)) == 1

            await wait_for(applied, timeout=20, message="the event once the database is back")
        assert await dlq.list_dead_letters(infra.amqp_url, service) == []
    finally:
        await consumer.stop()
        await behind_switch.dispose()
        await switch.down()


async def test_unreadable_message_goes_straight_to_the_dlq(db, clean, infra, unique):
    import aio_pika

    service = f"svc-{unique}"
    consumer = consumer_for(db, infra, service, {"customer.created": record_effect})
    await consumer.start()
    try:
        connection = await aio_pika.connect(infra.amqp_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange("billing.events")
            await exchange.publish(aio_pika.Message(b"{not json", message_id="garbage"), routing_key="customer.created")

        letters = await dead_letters(infra, service, "the unreadable message in the DLQ", timeout=10)
        assert letters[0].event_id == "garbage" and letters[0].reason == "rejected"
    finally:
        await consumer.stop()


def payment_succeeded(**kw) -> PaymentSucceeded:
    return PaymentSucceeded(payment_id=uuid.uuid4(), customer_id=uuid.uuid4(), amount=700, currency="EUR", **kw)


async def test_narrowed_bindings_hear_only_their_routing_words_even_on_a_queue_bound_whole_before(
    db, clean, infra, unique
):
    service = f"svc-{unique}"
    whole = consumer_for(db, infra, service, {"payment.succeeded": record_effect})
    await whole.start()  # an earlier version: its queue is bound to payment.succeeded.#
    await whole.stop()
    narrowed = consumer_for(db, infra, service, {"payment.succeeded": record_effect},
                            bindings={"payment.succeeded": ["payment.succeeded.*.dunning"]})
    await narrowed.start()
    try:
        async with EventBus(infra.amqp_url) as bus:
            direct = await bus.publish(payment_succeeded(invoice_id=uuid.uuid4()))
            retry = await bus.publish(payment_succeeded(dunning_case_id=uuid.uuid4()))
            # What a producer from before routing words sends: the bare type, still heard.
            legacy = Envelope(type="payment.succeeded", producer="old",
                              payload=payment_succeeded().model_dump(mode="json"))
            await bus._exchange.publish(envelope_message(legacy), routing_key="payment.succeeded")
            heard = [str(e.event_id) for e in (retry, legacy)]

            async def heard_applied():
                return await effect_count(db, *heard) == 2

            await wait_for(heard_applied)
        # The direct payment was routed (to nowhere) before the retry was confirmed.
        assert await effect_count(db, str(direct.event_id)) == 0
        assert await effect_count(db) == 2
    finally:
        await narrowed.stop()


async def test_in_a_rolling_upgrade_events_only_the_newer_replica_handles_are_never_dropped_by_the_older(
    db, clean, infra, unique
):
    """An older and a newer replica share the service's queue; the newer added a handler (and its binding)."""
    service = f"svc-{unique}"
    older = consumer_for(db, infra, service, {"customer.created": record_effect}, delivery_limit=5)
    newer = consumer_for(db, infra, service, {"customer.created": record_effect, "customer.updated": record_effect},
                         delivery_limit=5)
    await older.start()
    await newer.start()
    handed_back = HANDLED.labels(service, "customer.updated", "no_handler")
    try:
        async with EventBus(infra.amqp_url) as bus:
            updates = [await bus.publish(CustomerUpdated(customer_id=uuid.uuid4(), email="x@example.com"))
                       for _ in range(20)]

            async def all_applied() -> bool:
                return await effect_count(db, *(str(e.event_id) for e in updates)) == 20

            await wait_for(all_applied, timeout=20, message="every update applied by the newer replica")
        assert handed_back._value.get() >= 1  # the older replica got some of them, and handed them back
        assert await dlq.list_dead_letters(infra.amqp_url, service) == []
    finally:
        await older.stop()
        await newer.stop()


async def test_an_event_only_a_replica_not_yet_started_handles_waits_for_it_beyond_its_tries(db, clean, infra, unique):
    """A rollout that takes longer than a message's tries: the newer replica bound its event type, then went (or
    is not up yet); only the older one consumes meanwhile."""
    service = f"svc-{unique}"
    both = {"customer.created": record_effect, "customer.updated": record_effect}
    first_newer = consumer_for(db, infra, service, both)
    await first_newer.start()  # binds customer.updated to the queue
    await first_newer.stop()
    older = consumer_for(db, infra, service, {"customer.created": record_effect}, delivery_limit=2)
    await older.start()
    handed_back = HANDLED.labels(service, "customer.updated", "no_handler")
    before = handed_back._value.get()
    newer = consumer_for(db, infra, service, both)
    try:
        async with EventBus(infra.amqp_url) as bus:
            update = await bus.publish(CustomerUpdated(customer_id=uuid.uuid4(), email="x@example.com"))

            async def tried_beyond_the_limit() -> bool:
                return handed_back._value.get() - before > 2 + 2  # delivery_limit 2: three tries, then the DLQ

            await wait_for(tried_beyond_the_limit, timeout=20, message="the update handed back more than 3 times")
            await newer.start()

            async def applied() -> bool:
                return await effect_count(db, str(update.event_id)) == 1

            await wait_for(applied, timeout=20, message="the update applied by the newer replica once it is up")
        assert await dlq.list_dead_letters(infra.amqp_url, service) == []
    finally:
        await older.stop()
        await newer.stop()


async def test_a_consumer_may_not_handle_a_fact_marked_for_outside_listeners_only(db, infra, unique):
    # The relay counts such a fact sent when no queue takes it: a consumer of it here would miss some.
    with pytest.raises(ValueError, match="notification.sent, marked for outside listeners only"):
        consumer_for(db, infra, f"svc-{unique}", {"customer.created": record_effect, "notification.sent": record_effect})


async def test_a_retired_event_type_is_unbound_so_its_events_no_longer_reach_the_queue(db, clean, infra, unique):
    service = f"svc-{unique}"
    before = consumer_for(db, infra, service, {"customer.created": record_effect, "customer.updated": record_effect})
    await before.start()  # an earlier version, which handled customer.updated
    await before.stop()
    after = consumer_for(db, infra, service, {"customer.created": record_effect}, retired=["customer.updated"])
    await after.start()
    handed_back = HANDLED.labels(service, "customer.updated", "no_handler")
    try:
        async with EventBus(infra.amqp_url) as bus:
            update = await bus.publish(CustomerUpdated(customer_id=uuid.uuid4(), email="x@example.com"))
            marker = await bus.publish(event())

            async def marker_applied() -> bool:
                return await effect_count(db, str(marker.event_id)) == 1

            await wait_for(marker_applied)
        assert await effect_count(db, str(update.event_id)) == 0
        assert handed_back._value.get() == 0  # routed to no queue of this service, not handed around
    finally:
        await after.stop()


async def test_a_changed_delivery_limit_does_not_stop_the_consumer_from_starting_on_the_queue_as_it_is(
    db, clean, infra, unique, caplog
):
    service = f"svc-{unique}"
    before = consumer_for(db, infra, service, {"customer.created": record_effect}, delivery_limit=2)
    await before.start()  # the queue is made with x-delivery-limit 2
    await before.stop()
    after = consumer_for(db, infra, service, {"customer.created": record_effect}, delivery_limit=3)
    await after.start()
    try:
        assert f"queue {service} exists with other arguments" in caplog.text
        async with EventBus(infra.amqp_url) as bus:
            created = await bus.publish(event())

            async def applied():
                return await effect_count(db, str(created.event_id)) == 1

            await wait_for(applied)
    finally:
        await after.stop()


def batch_stats(service: str) -> tuple[float, float]:
    """(batches of two or more applied, events in them) so far."""
    count = REGISTRY.get_sample_value("event_batch_size_count", {"service": service}) or 0.0
    total = REGISTRY.get_sample_value("event_batch_size_sum", {"service": service}) or 0.0
    return count, total


async def test_events_queued_behind_a_slow_one_are_applied_together_once_each_with_their_own_causation(
    db, clean, infra, unique
):
    service = f"svc-{unique}"
    release = asyncio.Event()
    first_seen = asyncio.Event()

    @batchable
    async def record_and_announce(envelope: Envelope, uow) -> None:
        if not first_seen.is_set():  # hold the first event, so that the rest queue up behind it
            first_seen.set()
            await release.wait()
        await record_effect(envelope, uow)
        uow.emit(CustomerUpdated(customer_id=uuid.uuid4(), email=f"{envelope.event_id}@example.com"))

    consumer = consumer_for(db, infra, service, {"customer.created": record_and_announce}, batch_concurrency=1)
    await consumer.start()
    try:
        async with EventBus(infra.amqp_url) as bus:
            first = await bus.publish(event())
            await asyncio.wait_for(first_seen.wait(), 10)
            twice = uuid.uuid4()
            rest = [await bus.publish(event()) for _ in range(10)]
            for _ in range(2):  # a duplicate inside the batch
                await bus.publish(event(), event_id=twice)

            async def queued():
                return len(consumer._waiting) == 12

            await wait_for(queued, message="the other events waiting behind the first")
            release.set()
            ids = [str(e.event_id) for e in (first, *rest)] + [str(twice)]

            async def all_applied():
                return await effect_count(db, *ids) == 12

            await wait_for(all_applied)
        assert batch_stats(service) == (1.0, 12.0)  # one transaction for the 12 that queued
        assert HANDLED.labels(service, "customer.created", "duplicate")._value.get() == 1
        async with db.sessions() as s:
            announced = (await s.execute(select(outbox_table("plumbing").c.body))).scalars().all()
        caused = {b["causation_id"]: b["payload"]["email"].split("@")[0] for b in announced}
        assert len(announced) == 12 and all(cause == effect for cause, effect in caused.items())
    finally:
        await consumer.stop()


async def test_a_failing_event_in_a_batch_is_dead_lettered_alone_while_the_rest_are_applied(
    db, clean, infra, unique
):
    service = f"svc-{unique}"
    release = asyncio.Event()
    first_seen = asyncio.Event()
    poison_id = uuid.uuid4()

    @batchable
    async def fragile(envelope: Envelope, uow) -> None:
        if not first_seen.is_set():
            first_seen.set()
            await release.wait()
        await record_effect(envelope, uow)
        if envelope.event_id == poison_id:
            raise RuntimeError("handler bug")

    consumer = consumer_for(db, infra, service, {"customer.created": fragile}, batch_concurrency=1, delivery_limit=1)
    await consumer.start()
    try:
        async with EventBus(infra.amqp_url) as bus:
            await bus.publish(event())
            await asyncio.wait_for(first_seen.wait(), 10)
            healthy = [await bus.publish(event()) for _ in range(5)]
            await bus.publish(event(), event_id=poison_id)
            healthy += [await bus.publish(event()) for _ in range(5)]

            async def queued():
                return len(consumer._waiting) == 11

            await wait_for(queued)
            release.set()

            letters = await dead_letters(infra, service, "the poison event in the DLQ", timeout=20)
        assert [letter.event_id for letter in letters] == [str(poison_id)]
        assert await effect_count(db, *(str(e.event_id) for e in healthy)) == 10
        assert await effect_count(db, str(poison_id)) == 0  # rolled back with its batch, and on each retry
        assert batch_stats(service) == (0.0, 0.0)  # the batch never committed
    finally:
        await consumer.stop()


async def test_more_failing_messages_than_prefetch_slots_do_not_starve_the_one_that_lets_them_succeed(
    db, clean, infra, unique
):
    """Emails for a customer whose customer.created is still behind them in the queue: handed back to wait in a
    delay queue, they leave their prefetch slots to the messages behind (a requeue would put them back first)."""
    service = f"svc-{unique}"
    known: set[str] = set()

    async def updated_needs_the_customer(envelope: Envelope, uow) -> None:
        if envelope.payload["customer_id"] not in known:
            raise Retryable("customer not known yet")
        await record_effect(envelope, uow)

    async def created(envelope: Envelope, uow) -> None:
        known.add(envelope.payload["customer_id"])
        await record_effect(envelope, uow)

    consumer = consumer_for(
        db, infra, service, {"customer.updated": updated_needs_the_customer, "customer.created": created},
        prefetch=2, delivery_limit=3, retry_attempts=1, redelivery_backoff_s=0.2, redelivery_backoff_max_s=0.2,
    )
    await consumer.start()
    try:
        async with EventBus(infra.amqp_url) as bus:
            customer_id = uuid.uuid4()
            early = [
                await bus.publish(CustomerUpdated(customer_id=customer_id, email=f"{n}@example.com"))
                for n in range(4)
            ]
            await bus.publish(CustomerCreated(customer_id=customer_id, email="x@example.com"))

            async def all_applied():
                return await effect_count(db) == 5

            await wait_for(all_applied, timeout=20, message="every update, once its customer was known")
        assert await effect_count(db, *(str(e.event_id) for e in early)) == 4
        assert await dlq.list_dead_letters(infra.amqp_url, service) == []
    finally:
        await consumer.stop()


async def test_a_handler_under_way_at_stop_that_finishes_within_the_grace_is_committed_and_acked_once(
    db, clean, infra, unique, monkeypatch
):
    """A replica stopping (a deploy, a scale-down) while it sends an email: the send finishes and commits, its message
    is acked, and the replica that takes over does not handle it again."""
    service = f"svc-{unique}"
    outside_effects: list[str] = []
    under_way, release = asyncio.Event(), asyncio.Event()

    async def slow_mailer(envelope: Envelope, uow) -> None:
        outside_effects.append(str(envelope.event_id))  # the SMTP accept: cannot be rolled back
        if not release.is_set():
            under_way.set()
            await release.wait()
        await record_effect(envelope, uow)

    first = consumer_for(db, infra, service, {"customer.created": slow_mailer}, stop_grace_s=10)
    await first.start()
    # A quorum queue counts a cancelled consumer until its deliveries are settled: the broker cannot tell when
    # stop() has cancelled it, so the queue's cancel says so.
    consumer_cancelled, cancel = asyncio.Event(), type(first._queue).cancel

    async def cancel_and_tell(queue, *args, **kwargs):
        try:
            return await cancel(queue, *args, **kwargs)
        finally:
            consumer_cancelled.set()

    monkeypatch.setattr(type(first._queue), "cancel", cancel_and_tell)
    stopping: asyncio.Task | None = None
    try:
        async with EventBus(infra.amqp_url) as bus:
            sent = await bus.publish(event())
            await asyncio.wait_for(under_way.wait(), 10)
            stopping = asyncio.create_task(first.stop())
            await asyncio.wait_for(consumer_cancelled.wait(), 10)
            assert not stopping.done()  # in its grace, the handler still running
            release.set()
            await asyncio.wait_for(stopping, 10)
            assert await effect_count(db, str(sent.event_id)) == 1

            after = consumer_for(db, infra, service, {"customer.created": slow_mailer})
            await after.start()
            try:
                marker = await bus.publish(event())  # behind any copy of the first event the broker had back

                async def marker_applied() -> bool:
                    return await effect_count(db, str(marker.event_id)) == 1

                await wait_for(marker_applied)
            finally:
                await after.stop()  # lets whatever it has under way finish
    finally:
        release.set()
        await (stopping or first.stop())
    assert outside_effects == [str(sent.event_id), str(marker.event_id)]
    assert HANDLED.labels(service, "customer.created", "handled")._value.get() == 2
    assert HANDLED.labels(service, "customer.created", "duplicate")._value.get() == 0  # never redelivered


async def test_a_handler_that_outlasts_the_grace_is_cancelled_and_has_unwound_before_stop_returns(
    db, clean, infra, unique
):
    """stop() is followed by closing the broker connection and disposing of the database: a handler cancelled but
    still unwinding (rolling back) must not have them closed from under it. Its message comes back."""
    service = f"svc-{unique}"
    under_way, unwound = asyncio.Event(), asyncio.Event()
    hangs = True

    async def hangs_once(envelope: Envelope, uow) -> None:
        await record_effect(envelope, uow)
        if not hangs:
            return
        under_way.set()
        try:
            await asyncio.Event().wait()  # an SMTP server that never answers
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # unwinding takes a while (a rollback over a slow connection, say)
            unwound.set()
            raise

    consumer = consumer_for(db, infra, service, {"customer.created": hangs_once}, stop_grace_s=0.2)
    await consumer.start()
    try:
        async with EventBus(infra.amqp_url) as bus:
            sent = await bus.publish(event())
        await asyncio.wait_for(under_way.wait(), 10)
    finally:
        await consumer.stop()
    assert unwound.is_set()
    assert db.engine.sync_engine.pool.checkedout() == 0  # rolled back, its connection back in the pool
    assert await effect_count(db, str(sent.event_id)) == 0

    hangs = False
    after = consumer_for(db, infra, service, {"customer.created": hangs_once})
    await after.start()
    try:

        async def applied_by_the_next() -> bool:
            return await effect_count(db, str(sent.event_id)) == 1

        await wait_for(applied_by_the_next, message="the cancelled handler's event, redelivered")
    finally:
        await after.stop()


async def test_stop_waits_a_bounded_time_for_a_cancelled_handler_that_does_not_unwind(
    db, clean, infra, unique, monkeypatch
):
    """A handler whose rollback hangs (the database gone at shutdown) does not hang stop()."""
    monkeypatch.setattr(consumer_module, "_UNWIND_S", 0.3)
    service = f"svc-{unique}"
    under_way, released = asyncio.Event(), asyncio.Event()

    async def never_unwinds(envelope: Envelope, uow) -> None:
        under_way.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await released.wait()  # a rollback that never comes back
            raise

    consumer = consumer_for(db, infra, service, {"customer.created": never_unwinds}, stop_grace_s=0.2)
    await consumer.start()
    stuck = []
    try:
        async with EventBus(infra.amqp_url) as bus:
            await bus.publish(event())
        await asyncio.wait_for(under_way.wait(), 10)
        stuck = list(consumer._in_flight)
        started = time.monotonic()
        await asyncio.wait_for(consumer.stop(), 10)  # without the bound: the whole 10 s, then TimeoutError
        assert time.monotonic() - started < 3
    finally:
        released.set()
        await asyncio.gather(*stuck, return_exceptions=True)
