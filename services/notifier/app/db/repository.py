"""Queries on the customer projection and the notification log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Customer, Notification


async def upsert_customer(
    session: AsyncSession, customer_id: uuid.UUID, email: str, name: str, as_of: datetime
) -> None:
    """Record the customer as of `as_of`; an older event arriving late never overwrites a newer one."""
    stmt = insert(Customer).values(id=customer_id, email=email, name=name, as_of=as_of)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Customer.id],
            set_={"email": stmt.excluded.email, "name": stmt.excluded.name, "as_of": stmt.excluded.as_of},
            where=Customer.as_of <= stmt.excluded.as_of,
        )
    )


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer | None:
    return await session.get(Customer, customer_id)


async def was_sent(session: AsyncSession, event_id: uuid.UUID, template: str) -> bool:
    status = await session.scalar(
        select(Notification.status).where(Notification.event_id == event_id, Notification.template == template)
    )
    return status == "sent"


async def claim_notification(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID | None:
    """Insert the log row as sent; None if (event_id, template) is already logged as sent.

    A concurrent handler of the same event waits on the unique index until this transaction ends.
    """
    stmt = insert(Notification).values(**values, status="sent", error=None)
    replace = {k: stmt.excluded[k] for k in values if k not in ("id", "event_id", "template")}
    row = await session.execute(
        stmt.on_conflict_do_update(
            constraint="uq_notifications_event_template",
            set_={**replace, "status": "sent", "error": None},
            where=Notification.status != "sent",
        ).returning(Notification.id)
    )
    return row.scalar_one_or_none()


async def mark_rejected(session: AsyncSession, notification_id: uuid.UUID, error: str) -> None:
    await session.execute(
        update(Notification).where(Notification.id == notification_id).values(status="rejected", error=error[:2000])
    )
