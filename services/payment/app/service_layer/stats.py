"""Payment counts by status and captured amounts per day and currency, for the admin dashboard."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Payment
from ..domain.payments import PAYMENT_STATUSES


async def payment_stats(session: AsyncSession, as_of: datetime, days: int) -> dict:
    since = as_of - timedelta(days=days)
    window = (Payment.created_at > since, Payment.created_at <= as_of)
    counts = dict.fromkeys(PAYMENT_STATUSES, 0)
    for status, count in await session.execute(
        select(Payment.status, func.count()).where(*window).group_by(Payment.status)
    ):
        counts[status] = count
    day = cast(func.timezone("UTC", Payment.created_at), Date)
    collected = [
        {"date": d.isoformat(), "currency": currency, "amount": int(amount)}
        for d, currency, amount in await session.execute(
            select(day, Payment.currency, func.sum(Payment.amount))
            .where(*window, Payment.status == "succeeded")
            .group_by(day, Payment.currency)
            .order_by(day, Payment.currency)
        )
    ]
    return {"days": days, **counts, "collected": collected}
