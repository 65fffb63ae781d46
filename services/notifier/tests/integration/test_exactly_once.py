"""Exactly one email per event: through redelivery, SMTP outages and permanent refusals."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from billing_shared import dlq
from billing_shared.amqp import OUTAGE_SINCE_HEADER
from billing_shared.contracts import InvoicePaid, SubscriptionSuspended
from billing_shared.testing import EventBus, wait_for
from tests.support import (
    T0,
    handled_count,
    mails_to,
    new_customer,
    sent_events_for,
    unique_email,
    wait_for_announcement,
    wait_for_count,
    wait_for_mail,
    wait_until_handled,
)

if TYPE_CHECKING:
    from billing_shared.testing import TestInfra
    from tests.fakes import SmtpSink

CONSUMER_LOG = "billing_shared.consumer"


def receipt(customer_id: uuid.UUID, number: str = "INV-2027-0200", amount: int = 2500) -> InvoicePaid:
    return InvoicePaid(
        invoice_id=uuid.uuid4(), number=number, customer_id=customer_id, currency="USD",
        total=amount, amount_paid=amount, paid_at=T0,
    )


async def test_an_event_delivered_three_times_is_emailed_once(bus: EventBus, mail: SmtpSink) -> None:
    customer_id, email = await new_customer(bus, mail)
    duplicates_before = handled_count("invoice.paid", "duplicate")
    event_id = uuid.uuid4()

    for _ in range(3):
        await bus.publish(receipt(customer_id), event_id=event_id)

    await wait_for_count("invoice.paid", "duplicate", duplicates_before + 2)
    receipts = [m for m in mails_to(mail, email) if m["Subject"].startswith("Receipt")]
    assert len(receipts) == 1
    assert len(await wait_for_announcement(bus, event_id)) == 1  # and announced once


@asynccontextmanager
async def smtp_down(mail: SmtpSink) -> AsyncIterator[None]:
    """The SMTP server is stopped for the block's length, then started again."""
    await asyncio.to_thread(mail.stop)
    try:
        yield
    finally:
        await asyncio.to_thread(mail.start)


async def dead_lettered(service_env: TestInfra, *event_ids: uuid.UUID) -> set[str]:
    """Which of these events sit in notifier.dlq."""
    letters = await dlq.list_dead_letters(service_env.amqp_url, "notifier")
    return {str(event_id) for event_id in event_ids} & {letter.event_id for letter in letters}


async def test_smtp_down_for_a_while_then_every_email_is_delivered_exactly_once(
    bus: EventBus, mail: SmtpSink, service_env: TestInfra
) -> None:
    customer_id, email = await new_customer(bus, mail)
    failures_before = handled_count("invoice.paid", "failed")
    async with smtp_down(mail):
        published = [await bus.publish(receipt(customer_id, number=f"INV-2027-03{i:02d}")) for i in range(3)]
        # The outage is seen: at least one delivery was nacked after the sender's and the consumer's retries.
        await wait_for_count("invoice.paid", "failed", failures_before + 1)
        assert len(mails_to(mail, email)) == 1

    await wait_for_mail(mail, email, count=4)
    await wait_for(lambda: _all_announced(bus, published), message="every email announced")
    subjects = sorted(m["Subject"] for m in mails_to(mail, email))
    assert subjects == ["Receipt for invoice INV-2027-0300", "Receipt for invoice INV-2027-0301",
                        "Receipt for invoice INV-2027-0302", "Welcome, Ada Lovelace"]
    assert await dead_lettered(service_env, *(e.event_id for e in published)) == set()


async def test_smtp_down_for_more_tries_than_the_delivery_limit_still_delivers_and_dead_letters_nothing(
    bus: EventBus, mail: SmtpSink, service_env: TestInfra
) -> None:
    customer_id, email = await new_customer(bus, mail)
    failures_before = handled_count("invoice.paid", "failed")
    async with smtp_down(mail):
        published = await bus.publish(receipt(customer_id, number="INV-2027-0350"))
        # An outage is not the message's fault: more failed tries than the delivery limit allows others.
        await wait_for_count("invoice.paid", "failed", failures_before + 8, timeout=60)

    [_, sent] = await wait_for_mail(mail, email, count=2, timeout=20)
    assert sent["Subject"] == "Receipt for invoice INV-2027-0350"
    assert len(await wait_for_announcement(bus, published.event_id)) == 1
    assert await dead_lettered(service_env, published.event_id) == set()


async def test_a_permanently_refused_address_is_logged_as_rejected_and_not_retried(
    bus: EventBus, mail: SmtpSink, app: Any, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    customer_id, email = await new_customer(bus, mail)
    mail.unknown_mailboxes.add(email)
    failures_before = handled_count("subscription.suspended", "failed")

    envelope = await bus.publish(
        SubscriptionSuspended(
            subscription_id=uuid.uuid4(), customer_id=customer_id, status="suspended", at=datetime.now(UTC),
            amount=1000, currency="EUR",
        )
    )

    await wait_until_handled(app, envelope.event_id)
    response = await client.get("/api/notifications", params={"customer_id": str(customer_id)}, headers=admin_headers)
    rejected = [n for n in response.json()["data"] if n["event_id"] == str(envelope.event_id)]
    assert [(n["status"], n["template"]) for n in rejected] == [("rejected", "subscription_suspended")]
    assert "No such user" in rejected[0]["error"]
    assert handled_count("subscription.suspended", "failed") == failures_before  # acked at once, never nacked
    assert sent_events_for(bus, envelope.event_id) == []
    assert len(mails_to(mail, email)) == 1


async def test_a_recipient_refused_by_policy_on_every_try_goes_to_the_dlq_for_replay_not_to_days_of_outage(
    bus: EventBus, mail: SmtpSink, app: Any, client: httpx.AsyncClient, admin_headers: dict[str, str],
    service_env: TestInfra,
) -> None:
    """"554 5.7.1 Access denied" may refuse this recipient alone or the relay's whole setup: not final (it could be
    the setup), but not an outage either, which would try it every 30 s for OUTAGE_RETRY_S (days)."""
    customer_id, email = await new_customer(bus, mail)
    mail.policy_refused_mailboxes.add(email)

    envelope = await bus.publish(receipt(customer_id, number="INV-2027-0700"))

    async def dead_lettered() -> bool:
        letters = await dlq.list_dead_letters(service_env.amqp_url, "notifier")
        return any(letter.event_id == str(envelope.event_id) for letter in letters)

    await wait_for(dead_lettered, timeout=40, interval=0.2, message="the refused receipt in notifier.dlq")
    response = await client.get("/api/notifications", params={"customer_id": str(customer_id)}, headers=admin_headers)
    assert [n for n in response.json()["data"] if n["event_id"] == str(envelope.event_id)] == []  # not "rejected"
    assert len(mails_to(mail, email)) == 1  # its welcome only
    assert sent_events_for(bus, envelope.event_id) == []


async def test_an_smtp_login_refused_for_a_while_delays_the_email_but_does_not_drop_it(
    bus: EventBus, mail: SmtpSink, app: Any
) -> None:
    customer_id, email = await new_customer(bus, mail)
    failures_before = handled_count("invoice.paid", "failed")
    mail.mail_replies.extend(["530 5.7.0 Authentication required"] * 6)  # until the credentials are fixed

    envelope = await bus.publish(receipt(customer_id, number="INV-2027-0250"))

    await wait_for_count("invoice.paid", "failed", failures_before + 1)
    [_, sent] = await wait_for_mail(mail, email, count=2, timeout=20)
    assert sent["Subject"] == "Receipt for invoice INV-2027-0250"
    assert len(await wait_for_announcement(bus, envelope.event_id)) == 1


async def test_an_event_for_a_customer_not_known_yet_outwaits_the_ordinary_tries_and_is_emailed_once_it_comes(
    bus: EventBus, mail: SmtpSink, service_env: TestInfra, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from billing_shared.contracts import CustomerCreated

    caplog.set_level(logging.WARNING, logger=CONSUMER_LOG)
    late_id, late_email = uuid.uuid4(), unique_email("late")
    customer_id, email = await new_customer(bus, mail)

    orphan = await bus.publish(receipt(late_id, number="INV-2027-0400"))
    await bus.publish(receipt(customer_id, number="INV-2027-0401"))

    _, delivered = await wait_for_mail(mail, email, count=2)  # not held up behind the orphan
    assert delivered["Subject"] == "Receipt for invoice INV-2027-0401"

    async def tried_past_the_delivery_limit() -> bool:
        # An event that fails for good reaches the DLQ at its (delivery_limit + 1)th failed try: this one has more.
        return _failed_tries(caplog, orphan.event_id) > settings.delivery_limit + 1

    await wait_for(tried_past_the_delivery_limit, message="the orphan tried past the delivery limit")
    assert await dead_lettered(service_env, orphan.event_id) == set()

    await bus.publish(CustomerCreated(customer_id=late_id, email=late_email, name="Late Comer"), occurred_at=T0)

    messages = await wait_for_mail(mail, late_email, count=2)
    assert sorted(m["Subject"] for m in messages) == ["Receipt for invoice INV-2027-0400", "Welcome, Late Comer"]
    assert len(await wait_for_announcement(bus, orphan.event_id)) == 1


def _failed_tries(caplog: pytest.LogCaptureFixture, event_id: uuid.UUID) -> int:
    """How many times the consumer has logged this event's handling as failed."""
    return sum(1 for r in caplog.records if r.name == CONSUMER_LOG and f"{event_id} failed (try" in r.getMessage())


async def test_a_dead_lettered_event_replayed_once_its_customer_exists_is_emailed_once(
    bus: EventBus, mail: SmtpSink, service_env: TestInfra, settings: Any
) -> None:
    from billing_shared.contracts import CustomerCreated

    late_id, late_email = uuid.uuid4(), unique_email("late")
    # It has waited for its customer longer than AWAITING_RETRY_S already (an admin's typo, say): the DLQ next.
    waiting_since_ms = int((time.time() - settings.awaiting_retry_s - 60) * 1000)
    orphan = await bus.publish(receipt(late_id, number="INV-2027-0500"), headers={OUTAGE_SINCE_HEADER: waiting_since_ms})

    async def dead_lettered() -> bool:
        letters = await dlq.list_dead_letters(service_env.amqp_url, "notifier")
        return any(letter.event_id == str(orphan.event_id) for letter in letters)

    await wait_for(dead_lettered, timeout=20, interval=0.2, message="the orphan in notifier.dlq")
    await bus.publish(CustomerCreated(customer_id=late_id, email=late_email, name="Late Comer"), occurred_at=T0)
    await wait_for_mail(mail, late_email)

    assert await dlq.replay_dead_letters(service_env.amqp_url, "notifier", {str(orphan.event_id)}) == 1

    _, replayed = await wait_for_mail(mail, late_email, count=2)
    assert replayed["Subject"] == "Receipt for invoice INV-2027-0500"
    await wait_for_announcement(bus, orphan.event_id)
    assert len(mails_to(mail, late_email)) == 2


async def test_an_event_that_arrives_before_its_customer_waits_for_it(bus: EventBus, mail: SmtpSink) -> None:
    from billing_shared.contracts import CustomerCreated

    customer_id, email = uuid.uuid4(), unique_email("early")

    await bus.publish(receipt(customer_id, number="INV-2027-0600"))
    await bus.publish(CustomerCreated(customer_id=customer_id, email=email, name="Early Bird"), occurred_at=T0)

    messages = await wait_for_mail(mail, email, count=2)
    assert sorted(m["Subject"] for m in messages) == ["Receipt for invoice INV-2027-0600", "Welcome, Early Bird"]


async def _all_announced(bus: EventBus, published: list[Any]) -> bool:
    return all(sent_events_for(bus, e.event_id) for e in published)
