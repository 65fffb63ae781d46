"""customer.created / customer.updated: keep the local projection of who to email (and welcome new customers)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing_shared.contracts import CustomerCreated, CustomerUpdated
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..db.repository import upsert_customer
from ..delivery import EmailDelivery
from .emails import handle_emailed_event


async def handle_customer_created(envelope: Envelope, uow: UnitOfWork, *, delivery: EmailDelivery) -> None:
    event = envelope.payload_as(CustomerCreated)
    # Committed on its own (the upsert is idempotent and ordered by occurred_at), so the customer's other emails
    # can go out even while the welcome email waits for SMTP or sits in the dead-letter queue.
    async with AsyncSession(uow.session.bind) as session:
        await upsert_customer(session, event.customer_id, event.email, event.name, envelope.occurred_at)
        await session.commit()
    await handle_emailed_event(envelope, uow, delivery=delivery)


async def handle_customer_updated(envelope: Envelope, uow: UnitOfWork) -> None:
    event = envelope.payload_as(CustomerUpdated)
    await upsert_customer(uow.session, event.customer_id, event.email, event.name, envelope.occurred_at)
