"""Replaying dead letters: one older than the inbox keeps handled events stays in the DLQ unless forced."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest

from billing_shared import dlq
from billing_shared.ids import id_made_at, new_id
from billing_shared.testing import delete_queues

KEEP = timedelta(days=30)


@pytest.fixture(autouse=True)
async def delete_the_services_queues(infra, unique):
    """The durable queues a test made (see dead_lettered) go with it."""
    yield
    await delete_queues(infra.amqp_url, f"svc-{unique}", f"svc-{unique}.dlq")


def made_days_ago(days: float) -> str:
    return str(id_made_at(datetime.now(UTC) - timedelta(days=days)))


async def dead_lettered(infra, service: str, *event_ids: str) -> None:
    """Letters straight in `<service>.dlq`, and the service's queue a replay sends them to."""
    connection = await aio_pika.connect(infra.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(service, durable=True)
        await channel.declare_queue(f"{service}.dlq", durable=True)
        for event_id in event_ids:
            letter = aio_pika.Message(b"{}", message_id=event_id, type="customer.created")
            await channel.default_exchange.publish(letter, routing_key=f"{service}.dlq")


async def held(infra, queue_name: str) -> list[str]:
    """The event ids a queue holds (left in it)."""
    connection = await aio_pika.connect(infra.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        messages = []
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            messages.append(message)
        for message in messages:
            await message.nack(requeue=True)
        return sorted(m.message_id for m in messages)


async def test_a_letter_older_than_max_age_stays_in_the_dlq_and_is_reported_while_a_fresh_one_is_replayed(
    infra, unique
):
    service = f"svc-{unique}"
    old, fresh = made_days_ago(31), str(new_id())
    await dead_lettered(infra, service, old, fresh)

    skipped: list[dlq.TooOld] = []
    assert await dlq.replay_dead_letters(infra.amqp_url, service, max_age=KEEP, skipped=skipped) == 1

    assert [letter.event_id for letter in skipped] == [old]
    assert abs(skipped[0].age - timedelta(days=31)) < timedelta(minutes=1)
    assert await held(infra, f"{service}.dlq") == [old]
    assert await held(infra, service) == [fresh]


async def test_force_replays_a_letter_older_than_max_age(infra, unique):
    service = f"svc-{unique}"
    old = made_days_ago(31)
    await dead_lettered(infra, service, old)

    skipped: list[dlq.TooOld] = []
    assert await dlq.replay_dead_letters(infra.amqp_url, service, max_age=KEEP, force=True, skipped=skipped) == 1

    assert skipped == []
    assert await held(infra, f"{service}.dlq") == []
    assert await held(infra, service) == [old]


async def test_a_letter_whose_id_carries_no_time_counts_as_too_old(infra, unique):
    service = f"svc-{unique}"
    timeless = str(uuid.uuid4())
    await dead_lettered(infra, service, timeless)

    skipped: list[dlq.TooOld] = []
    assert await dlq.replay_dead_letters(infra.amqp_url, service, max_age=KEEP, skipped=skipped) == 0
    assert skipped == [dlq.TooOld(timeless, None)]
    assert await held(infra, f"{service}.dlq") == [timeless]

    assert await dlq.replay_dead_letters(infra.amqp_url, service, max_age=KEEP, force=True) == 1
    assert await held(infra, service) == [timeless]


async def test_the_cli_names_the_letters_it_kept_and_exits_non_zero_until_they_are_forced(
    infra, unique, capsys, monkeypatch
):
    service = f"svc-{unique}"
    first, second = made_days_ago(31), made_days_ago(31)
    await dead_lettered(infra, service, first, second)

    async def cli(*args: str) -> int:
        return await asyncio.to_thread(dlq.main, ["replay", "--service", service, "--amqp-url", infra.amqp_url, *args])

    monkeypatch.delenv("INBOX_KEEP_DAYS", raising=False)
    assert await cli() == 1
    out = capsys.readouterr().out
    assert "replayed 0 dead letter(s)" in out
    for event_id in (first, second):
        assert f"kept {event_id} in {service}.dlq, age 31.0 days (--max-age-days 30)" in out
    assert "re-run with --force" in out
    assert await held(infra, f"{service}.dlq") == sorted([first, second])

    assert await cli("--force", "--event-id", first) == 0
    assert "replayed 1 dead letter(s)" in capsys.readouterr().out
    assert await held(infra, service) == [first]

    monkeypatch.setenv("INBOX_KEEP_DAYS", "32")  # the default --max-age-days: the service's inbox keep
    assert await cli() == 0
    assert "replayed 1 dead letter(s)" in capsys.readouterr().out
    assert await held(infra, f"{service}.dlq") == []
    assert await held(infra, service) == sorted([first, second])


async def test_a_letter_kept_back_for_an_id_that_is_no_uuid_is_replayed_by_that_id_with_force(infra, unique, capsys):
    """The CLI tells an operator to re-run with --force --event-id ID for a letter of unknown age: such ids are the
    message ids of unreadable bytes or foreign producers, not UUIDs."""
    service = f"svc-{unique}"
    await dead_lettered(infra, service, "poison-1234", str(new_id()))

    code = await asyncio.to_thread(dlq.main, ["replay", "--service", service, "--amqp-url", infra.amqp_url,
                                              "--event-id", "poison-1234", "--force"])

    assert code == 0, capsys.readouterr()
    assert await held(infra, service) == ["poison-1234"]
    assert len(await held(infra, f"{service}.dlq")) == 1


async def test_list_reports_how_many_letters_the_dlq_holds_not_how_many_it_printed(infra, unique, capsys):
    service = f"svc-{unique}"
    await dead_lettered(infra, service, *(str(new_id()) for _ in range(3)))

    async def cli(*args: str) -> int:
        return await asyncio.to_thread(dlq.main, ["list", "--service", service, "--amqp-url", infra.amqp_url, *args])

    assert await cli("--limit", "2") == 0
    out = capsys.readouterr().out
    assert out.count('"event_id"') == 2
    assert f"first 2 of 3 dead letter(s) in {service}.dlq (--limit 2)" in out
    assert await cli() == 0
    assert capsys.readouterr().out.endswith(f"\n3 dead letter(s) in {service}.dlq\n")


async def test_a_replay_takes_the_first_limit_letters_and_exits_non_zero_saying_how_many_it_left(
    infra, unique, capsys
):
    service = f"svc-{unique}"
    ids = [str(new_id()) for _ in range(3)]
    await dead_lettered(infra, service, *ids)

    async def cli(*args: str) -> int:
        return await asyncio.to_thread(dlq.main, ["replay", "--service", service, "--amqp-url", infra.amqp_url, *args])

    assert await cli("--limit", "2") == 1
    out = capsys.readouterr().out
    assert "replayed 2 dead letter(s)" in out
    assert f"1 more dead letter(s) in {service}.dlq not looked at (a replay takes the first --limit 2)" in out
    assert len(await held(infra, f"{service}.dlq")) == 1

    assert await cli() == 0
    assert "not looked at" not in capsys.readouterr().out
    assert await held(infra, f"{service}.dlq") == []
    assert await held(infra, service) == sorted(ids)


async def test_an_event_id_is_matched_however_it_is_written_and_one_no_letter_has_is_named_with_exit_1(
    infra, unique, capsys
):
    service = f"svc-{unique}"
    first, second, nowhere = str(new_id()), str(new_id()), str(new_id())
    await dead_lettered(infra, service, first, second)

    async def cli(*args: str) -> int:
        return await asyncio.to_thread(dlq.main, ["replay", "--service", service, "--amqp-url", infra.amqp_url, *args])

    assert await cli("--event-id", first.upper()) == 0
    assert "replayed 1 dead letter(s)" in capsys.readouterr().out
    assert await held(infra, service) == [first]

    assert await cli("--event-id", uuid.UUID(second).hex, "--event-id", nowhere) == 1
    out = capsys.readouterr().out
    assert "replayed 1 dead letter(s)" in out
    assert f"no letter of event {nowhere} in {service}.dlq\n" in out
    assert await held(infra, f"{service}.dlq") == []
    assert await held(infra, service) == sorted([first, second])


@pytest.mark.parametrize(
    ("amqp_url", "said"),
    [
        ("amqp://guest:s3cret@127.0.0.1:1/", "cannot connect to RabbitMQ at amqp://guest@127.0.0.1:1/: "),
        ("amqp://guest:s3cret@127.0.0.1:5672/", "cannot connect to RabbitMQ at amqp://guest@127.0.0.1:5672/: "
                                                "ACCESS_REFUSED"),
        ("amqp://guest:guest@127.0.0.1:5672/no-such-vhost?heartbeat=5",
         "RabbitMQ at amqp://guest@127.0.0.1:5672/no-such-vhost refused the connection (is the vhost right"),
    ],
)
@pytest.mark.parametrize("command", ["list", "replay"])
def test_a_broker_out_of_reach_or_refusing_us_is_one_line_naming_the_url_without_its_password_and_exit_2(
    command, amqp_url, said, capsys
):
    assert dlq.main([command, "--service", "payment", "--amqp-url", amqp_url]) == 2
    err = capsys.readouterr().err
    assert f"python -m billing_shared.dlq: {said}" in err
    assert "s3cret" not in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["list", "replay"])
async def test_a_service_with_no_dlq_is_said_so_with_exit_2_not_reported_as_having_no_dead_letters(
    infra, unique, command, capsys
):
    service = f"svc-{unique}"
    cli = [command, "--service", service, "--amqp-url", infra.amqp_url]
    assert await asyncio.to_thread(dlq.main, cli) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"no queue {service}.dlq at {infra.amqp_url.replace(':guest@', '@')}: {service} consumes no" in captured.err


async def test_a_replay_with_no_service_queue_to_replay_to_leaves_the_letters_in_the_dlq_with_exit_2(
    infra, unique, capsys
):
    service, letter = f"svc-{unique}", str(new_id())
    await dead_lettered(infra, service, letter)
    await delete_queues(infra.amqp_url, service)

    cli = ["replay", "--service", service, "--amqp-url", infra.amqp_url]
    assert await asyncio.to_thread(dlq.main, cli) == 2
    assert f"no queue {service} to replay {service}.dlq to" in capsys.readouterr().err
    assert await held(infra, f"{service}.dlq") == [letter]
