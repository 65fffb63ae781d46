"""Queries on the customer projection and the notification log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing_shared.projections import newest_wins_upsert

from .models import Customer, Notification


# Statements are built once on the Core tables and executed with parameters: building an INSERT .. ON CONFLICT
# per event cost more CPU than running it.
_UPSERT_CUSTOMER = newest_wins_upsert(Customer.__table__, key="id", version="as_of", columns=("email", "name"))
_notifications = Notification.__table__
_insert_notification = insert(_notifications)
_CLAIMED_COLUMNS = (
    "event_type", "customer_id", "recipient", "subject", "message_id", "has_attachment", "sent_at", "status", "error"
)
_CLAIM_NOTIFICATION = _insert_notification.on_conflict_do_update(
    constraint="uq_notifications_event_template",
    set_={k: _insert_notification.excluded[k] for k in _CLAIMED_COLUMNS},
    where=_notifications.c.status != "sent",
).returning(_notifications.c.id)


async def upsert_customer(
    session: AsyncSession, customer_id: uuid.UUID, email: str, name: str, as_of: datetime
) -> None:
    """Record the customer as of `as_of`; an older event arriving late never overwrites a newer one."""
    await session.execute(_UPSERT_CUSTOMER, {"id": customer_id, "email": email, "name": name, "as_of": as_of})


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer | None:
    return await session.get(Customer, customer_id)


async def claim_notification(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID | None:
    """Insert the log row as sent; None if (event_id, template) is already logged as sent.

    A concurrent handler of the same event waits on the unique index until this transaction ends.
    """
    row = await session.execute(_CLAIM_NOTIFICATION, {**values, "status": "sent", "error": None})
    return row.scalar_one_or_none()


async def mark_rejected(session: AsyncSession, notification_id: uuid.UUID, error: str) -> None:
    await session.execute(
        update(Notification).where(Notification.id == notification_id).values(status="rejected", error=error[:2000])
    )
