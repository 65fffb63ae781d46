"""Queries on the customer projection and the notification log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from billing_shared.db import driver_connection, sql_name
from billing_shared.projections import newest_wins_upsert

from .models import Customer, Notification

# Statements are built once: building an INSERT .. ON CONFLICT per event cost more CPU than running it. The
# two every email runs (the recipient's lookup and the log row's claim) go to the driver connection: through
# SQLAlchemy each cost several times the client CPU.
_UPSERT_CUSTOMER = newest_wins_upsert(Customer.__table__, key="id", version="as_of", columns=("email", "name"))
_GET_RECIPIENT = f"SELECT id, email, name FROM {sql_name(Customer.__table__)} WHERE id = $1"
_CLAIMED_COLUMNS = (
    "event_type", "customer_id", "recipient", "subject", "message_id", "has_attachment", "sent_at", "status", "error"
)
_CLAIM_COLUMNS = ("id", "event_id", "template", *_CLAIMED_COLUMNS)
_CLAIM_NOTIFICATION = (
    f"INSERT INTO {sql_name(Notification.__table__)} AS n ({', '.join(_CLAIM_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_CLAIM_COLUMNS) + 1))}) "
    "ON CONFLICT ON CONSTRAINT uq_notifications_event_template DO UPDATE SET "
    + ", ".join(f"{column} = EXCLUDED.{column}" for column in _CLAIMED_COLUMNS)
    + " WHERE n.status <> 'sent' RETURNING n.id"
)


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who an email goes to, from the customer projection."""

    id: uuid.UUID
    email: str
    name: str


async def upsert_customer(
    session: AsyncSession, customer_id: uuid.UUID, email: str, name: str, as_of: datetime
) -> None:
    """Record the customer as of `as_of`; an older event arriving late never overwrites a newer one."""
    await session.execute(_UPSERT_CUSTOMER, {"id": customer_id, "email": email, "name": name, "as_of": as_of})


async def get_recipient(session: AsyncSession, customer_id: uuid.UUID) -> Recipient | None:
    row = await (await driver_connection(session)).fetchrow(_GET_RECIPIENT, customer_id)
    return Recipient(*row) if row else None


async def claim_notification(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID | None:
    """Insert the log row as sent; None if (event_id, template) is already logged as sent.

    A concurrent handler of the same event waits on the unique index until this transaction ends.
    """
    row = {**values, "status": "sent", "error": None}
    driver = await driver_connection(session)
    return await driver.fetchval(_CLAIM_NOTIFICATION, *(row[column] for column in _CLAIM_COLUMNS))


async def mark_rejected(session: AsyncSession, notification_id: uuid.UUID, error: str) -> None:
    await session.execute(
        update(Notification).where(Notification.id == notification_id).values(status="rejected", error=error[:2000])
    )
