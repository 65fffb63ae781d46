"""Helpers for the notifier's integration tests: customers and events, the mailbox, the consumer's counters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from billing_shared.contracts import CustomerCreated
from billing_shared.events import Envelope
from billing_shared.plumbing_tables import inbox_table
from billing_shared.testing import EventBus, events_handled, wait_for

if TYPE_CHECKING:
    from tests.fakes import SmtpSink

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def unique_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


async def new_customer(bus: EventBus, mail: SmtpSink, name: str = "Ada Lovelace") -> tuple[uuid.UUID, str]:
    """Publish customer.created and wait for its welcome email (so the projection has the customer)."""
    customer_id, email = uuid.uuid4(), unique_email()
    await bus.publish(CustomerCreated(customer_id=customer_id, email=email, name=name), occurred_at=T0)
    await wait_for_mail(mail, email)
    return customer_id, email


def mails_to(mail: SmtpSink, address: str) -> list[EmailMessage]:
    return [m for m in mail.messages if m["To"] == address]


async def wait_for_mail(mail: SmtpSink, address: str, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
    async def enough() -> list[EmailMessage] | None:
        found = mails_to(mail, address)
        return found if len(found) >= count else None

    return await wait_for(enough, timeout, message=f"{count} email(s) to {address}")


def text_of(message: EmailMessage) -> str:
    return " ".join(message.get_body(("plain",)).get_content().split())


def html_of(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


async def wait_until_handled(app: Any, *event_ids: uuid.UUID, timeout: float = 10.0) -> None:
    """Until the consumer has committed every one of these events (their ids are in its inbox)."""
    inbox = inbox_table("notifier")
    wanted = set(event_ids)

    async def all_handled() -> bool:
        async with app.state.runtime.db.sessions() as session:
            found = set((await session.scalars(select(inbox.c.event_id).where(inbox.c.event_id.in_(wanted)))).all())
        return found == wanted

    await wait_for(all_handled, timeout, message=f"events {sorted(map(str, wanted))} handled")


def handled_count(event_type: str, outcome: str) -> float:
    """How many deliveries of this type the consumer has finished with this outcome (handled, duplicate, failed)."""
    return events_handled("notifier", event_type, outcome)


def days(n: int) -> timedelta:
    return timedelta(days=n)


def sent_events_for(bus: EventBus, event_id: uuid.UUID) -> list[Envelope]:
    return [e for e in bus.of_type("notification.sent") if e.payload["source_event_id"] == str(event_id)]


async def wait_for_count(event_type: str, outcome: str, at_least: float, timeout: float = 10.0) -> None:
    """Until the consumer's counter of this type and outcome reaches `at_least`."""

    async def reached() -> bool:
        return handled_count(event_type, outcome) >= at_least

    await wait_for(reached, timeout, message=f"{at_least:g} x {event_type} {outcome}")


async def wait_for_announcement(bus: EventBus, event_id: uuid.UUID, timeout: float = 10.0) -> list[Envelope]:
    """The notification.sent events announcing the email for this source event (once there is one)."""

    async def announced() -> list[Envelope]:
        return sent_events_for(bus, event_id)

    return await wait_for(announced, timeout, message=f"notification.sent for {event_id}")
