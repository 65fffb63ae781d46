"""The notification log: which emails went out, to whom, for which event."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from billing_shared.auth import CurrentPrincipal
from billing_shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, fetch_page

from ..db.models import Notification
from .schemas import NotificationOut, NotificationPage

router = APIRouter(prefix="/api/notifications", tags=["notifications"])

# A rejection's stored error is for support: the SMTP server's host:port and its reply, whose text may name more of
# the mail setup. A customer needs only the outcome.
REJECTED_FOR_CUSTOMERS = "The mail server refused this email."


@router.get("", response_model=NotificationPage, summary="List sent emails (admin: all; user: their own)")
async def list_notifications(
    request: Request,
    principal: CurrentPrincipal,
    customer_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> NotificationPage:
    customer_id = principal.customer_to_list(customer_id)
    stmt = select(Notification)
    if customer_id is not None:
        stmt = stmt.where(Notification.customer_id == customer_id)
    async with request.app.state.runtime.db.reads() as session:
        rows, next_cursor = await fetch_page(session, stmt, Notification.id, cursor, limit)
    data = [NotificationOut.model_validate(r) for r in rows]
    if not principal.is_admin:
        data = [n.model_copy(update={"error": REJECTED_FOR_CUSTOMERS}) if n.error else n for n in data]
    return NotificationPage(data=data, has_more=next_cursor is not None, next_cursor=next_cursor)
