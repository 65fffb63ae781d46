"""Seed many due subscriptions fast (COPY), for the billing-run benchmark and load tests.

    await seed_due(database_url, count=100_000, as_of=datetime(2026, 1, 1, tzinfo=UTC))

Each seeded subscription is active on one shared monthly plan, anchored `periods_due` months before
as_of (so a run at as_of renews each of them `periods_due` times), with its period 0 row written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from billing_shared.ids import new_id
from billing_shared.relay import asyncpg_dsn

from .domain.periods import add_interval, require_aware


@dataclass(frozen=True)
class Seeded:
    plan_id: uuid.UUID
    count: int
    anchor: datetime


async def seed_due(
    database_url: str,
    count: int,
    as_of: datetime,
    *,
    periods_due: int = 1,
    amount: int = 1000,
    currency: str = "USD",
    schema: str = "subscription",
) -> Seeded:
    as_of = require_aware(as_of, "as_of")
    if count < 1 or periods_due < 1:
        raise ValueError("count and periods_due must be >= 1")
    # Anchored a few days further back than periods_due months, so even clamped month ends are due.
    anchor = as_of - timedelta(days=31 * periods_due)
    first_end = add_interval(anchor, "month", 1, 1)
    plan_id = new_id()
    conn = await asyncpg.connect(asyncpg_dsn(database_url), server_settings={"search_path": schema})
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO plans (id, name, amount, currency, interval, interval_count, trial_days, created_at)"
                " VALUES ($1, $2, $3, $4, 'month', 1, 0, $5)",
                plan_id, f"Bench {amount} {currency}", amount, currency, anchor,
            )
            ids = [new_id() for _ in range(count)]
            await conn.copy_records_to_table(
                "subscriptions",
                schema_name=schema,
                columns=[
                    "id", "customer_id", "plan_id", "status", "anchor", "anchor_period_index",
                    "current_period_index", "current_period_start", "current_period_end", "cancel_at_period_end",
                    "created_at", "updated_at",
                ],
                records=[
                    (sid, uuid.uuid4(), plan_id, "active", anchor, 0, 0, anchor, first_end, False, anchor, anchor)
                    for sid in ids
                ],
            )
            await conn.copy_records_to_table(
                "subscription_periods",
                schema_name=schema,
                columns=[
                    "subscription_id", "period_index", "plan_id", "kind", "period_start", "period_end", "amount",
                    "currency", "amount_paid", "amount_credited",
                ],
                records=[(sid, 0, plan_id, "regular", anchor, first_end, amount, currency, amount, 0) for sid in ids],
            )
        await conn.execute("ANALYZE subscriptions; ANALYZE subscription_periods")
    finally:
        await conn.close()
    return Seeded(plan_id=plan_id, count=count, anchor=anchor)
