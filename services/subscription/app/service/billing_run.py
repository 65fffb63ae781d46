"""The billing run: renew every subscription whose period ended at or before `as_of`, one period at a time.

Work is claimed in batches with FOR UPDATE SKIP LOCKED, so any number of runners (replicas, the scheduler,
POST /api/billing-runs, the CLI) can run at once: a subscription is advanced by exactly one period per
claim, in the same transaction as its period row (unique per subscription and index) and its outbox
event. The loop claims again until nothing is due, so as_of three months ahead gives three renewals,
each its own subscription.renewed. Rows are written with set-based statements (UPDATE ... FROM unnest,
multi-row INSERT), never one ORM round trip per subscription. A batch that fails is retried one
subscription per transaction, so one bad row is counted as failed and cannot block the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text

from billing_shared.contracts import SubscriptionCanceled, SubscriptionRenewed
from billing_shared.db import Database, UnitOfWork
from billing_shared.ids import new_id

from ..db.models import Plan, Subscription, plans, subscriptions
from ..domain.schedule import Schedule
from .lifecycle import RENEWABLE, resume

log = logging.getLogger(__name__)

Progress = Callable[[int], None]

_RENEW = text(
    """
    UPDATE subscriptions AS s
       SET plan_id = v.plan_id, pending_plan_id = NULL, status = v.status, current_period_index = v.idx,
           current_period_start = v.starts, current_period_end = v.ends, period_invoice_id = v.invoice_id,
           updated_at = v.starts
      FROM unnest(CAST(:ids AS uuid[]), CAST(:plan_ids AS uuid[]), CAST(:statuses AS text[]),
                  CAST(:idx AS int[]), CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]),
                  CAST(:invoice_ids AS uuid[]))
           AS v(id, plan_id, status, idx, starts, ends, invoice_id)
     WHERE s.id = v.id
    """
)
_INSERT_PERIODS = text(
    """
    INSERT INTO subscription_periods (subscription_id, period_index, plan_id, kind, period_start, period_end,
                                      amount, currency, amount_paid, amount_credited)
    SELECT v.id, v.idx, v.plan_id, 'regular', v.starts, v.ends, v.amount, v.currency, 0, 0
      FROM unnest(CAST(:ids AS uuid[]), CAST(:idx AS int[]), CAST(:plan_ids AS uuid[]),
                  CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]), CAST(:amounts AS bigint[]),
                  CAST(:currencies AS text[])) AS v(id, idx, plan_id, starts, ends, amount, currency)
    """
)
_END = text(
    """
    UPDATE subscriptions
       SET status = 'canceled', ended_at = current_period_end, cancel_at_period_end = false,
           pending_plan_id = NULL, updated_at = current_period_end
     WHERE id = ANY(CAST(:ids AS uuid[]))
    """
)


_s = subscriptions.c
# What a claimed subscription needs to be renewed or ended.
_CLAIMED = (
    _s.id, _s.customer_id, _s.plan_id, _s.pending_plan_id, _s.payment_method_id, _s.status, _s.anchor,
    _s.anchor_period_index, _s.current_period_index, _s.current_period_start, _s.current_period_end,
    _s.cancel_at_period_end, _s.canceled_at,
)


@dataclass
class RunSummary:
    as_of: datetime
    renewed: int = 0
    ended: int = 0
    resumed: int = 0
    skipped: int = 0
    failed: int = 0
    failed_ids: set[uuid.UUID] = field(default_factory=set, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("as_of", "renewed", "ended", "resumed", "skipped", "failed")}


async def count_due(db: Database, as_of: datetime) -> int:
    """Subscriptions with at least one period to renew or end (for a progress bar's total)."""
    return await _due_count(db, as_of, set())


async def _due_count(db: Database, as_of: datetime, leave_out: set[uuid.UUID]) -> int:
    s = subscriptions.c
    stmt = select(func.count()).where(s.status.in_(RENEWABLE), s.current_period_end <= as_of)
    if leave_out:
        stmt = stmt.where(s.id.not_in(leave_out))
    async with db.reads() as session:
        return await session.scalar(stmt) or 0


async def run_billing(
    db: Database,
    as_of: datetime,
    *,
    batch_size: int = 500,
    concurrency: int = 2,
    on_progress: Progress | None = None,
    busy_wait_s: float = 10.0,
) -> RunSummary:
    """Renew everything due at `as_of`, `concurrency` batches at a time (each its own transaction and pool
    connection: one batch's statements and commit overlap the next one's claim and event building)."""
    summary = RunSummary(as_of)
    try:
        summary.resumed = await resume_due(db, as_of, batch_size)
    except Exception:  # a resume that cannot be done must not hold up every renewal
        log.exception("resuming paused subscriptions failed; renewing the rest anyway")
    try:
        summary.ended += await end_suspended_cancellations(db, as_of, batch_size)
    except Exception:
        log.exception("ending suspended subscriptions canceled at period end failed; renewing the rest anyway")

    async def drain() -> None:
        while claimed := await _advance_batch(db, as_of, batch_size, summary):
            if on_progress:
                on_progress(claimed)

    deadline = time.monotonic() + busy_wait_s
    while True:
        await asyncio.gather(*(drain() for _ in range(max(1, concurrency))))
        # Nothing claimable: done, unless due rows were skipped because a short transaction held them (an
        # event handler recording a payment, another runner's batch). Wait for those, a bounded while, so
        # that a run reports what it renewed rather than leaving them silently for the next run.
        if time.monotonic() >= deadline or not await _due_count(db, as_of, summary.failed_ids):
            break
        await asyncio.sleep(0.05)
    summary.failed = len(summary.failed_ids)
    summary.skipped = await _count_held(db, as_of)
    return summary


async def resume_due(db: Database, as_of: datetime, batch_size: int = 100) -> int:
    """Resume paused subscriptions whose resumes_at has come, each at its resumes_at."""
    resumed = 0
    while True:
        async with db.uow() as uow:
            due = list(
                await uow.session.scalars(
                    select(Subscription)
                    .where(Subscription.status == "paused", Subscription.resumes_at <= as_of)
                    .order_by(Subscription.resumes_at)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not due:
                return resumed
            plan_rows = await _plans(uow, {sub.plan_id for sub in due})
            for sub in due:
                sub.plan = plan_rows[sub.plan_id]
                await resume(uow, sub, at=sub.resumes_at)
            await uow.commit()
            resumed += len(due)


async def end_suspended_cancellations(db: Database, as_of: datetime, batch_size: int = 100) -> int:
    """End suspended subscriptions that were to cancel at the end of a period now over. The renewal claim
    skips suspended ones (they are not billed), so without this they would stay suspended for good, and a
    late payment would reactivate them into a period the customer canceled."""
    s = subscriptions.c
    ended = 0
    while True:
        async with db.uow() as uow:
            rows = (
                await uow.session.execute(
                    select(*_CLAIMED)
                    .where(s.status == "suspended", s.cancel_at_period_end, s.current_period_end <= as_of)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return ended
            plan_rows = await _plans(uow, {row.plan_id for row in rows})
            for row in rows:
                uow.emit(ended_event(row, plan_rows[row.plan_id].currency), occurred_at=row.current_period_end)
            await uow.session.execute(_END, {"ids": [row.id for row in rows]})
            await uow.commit()
            ended += len(rows)


async def _count_held(db: Database, as_of: datetime) -> int:
    """Paused or suspended subscriptions whose period has ended: due, but not billed."""
    s = subscriptions.c
    async with db.reads() as session:
        return await session.scalar(
            select(func.count()).where(s.status.in_(("paused", "suspended")), s.current_period_end <= as_of)
        ) or 0


async def _advance_batch(db: Database, as_of: datetime, batch_size: int, summary: RunSummary) -> int:
    """Claim up to batch_size due subscriptions and advance each by one period; the number claimed."""
    async with db.uow() as uow:
        rows = await _claim(uow, as_of, batch_size, summary.failed_ids)
        if not rows:
            return 0
        try:
            renewed, ended = await _advance(uow, rows)
            await uow.commit()
        except Exception:
            log.exception("billing batch of %d failed; retrying its subscriptions one by one", len(rows))
            ids = [row.id for row in rows]
        else:
            summary.renewed += renewed
            summary.ended += ended
            return len(rows)
    for subscription_id in ids:
        await _advance_one(db, as_of, subscription_id, summary)
    return len(ids)


async def _advance_one(db: Database, as_of: datetime, subscription_id: uuid.UUID, summary: RunSummary) -> None:
    try:
        async with db.uow() as uow:
            rows = await _claim(uow, as_of, 1, summary.failed_ids, only=subscription_id)
            if rows:
                renewed, ended = await _advance(uow, rows)
                await uow.commit()
                summary.renewed += renewed
                summary.ended += ended
    except Exception:
        log.exception("renewing subscription %s failed; it is left for the next run", subscription_id)
        summary.failed_ids.add(subscription_id)


async def _claim(
    uow: UnitOfWork, as_of: datetime, limit: int, failed: set[uuid.UUID], only: uuid.UUID | None = None
) -> Sequence[Any]:
    s = subscriptions.c
    stmt = (
        select(*_CLAIMED)
        .where(s.status.in_(RENEWABLE), s.current_period_end <= as_of)
        .order_by(s.current_period_end)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if failed:
        stmt = stmt.where(s.id.not_in(failed))
    if only is not None:
        stmt = stmt.where(s.id == only)
    return (await uow.session.execute(stmt)).all()


async def _plans(uow: UnitOfWork, ids: set[uuid.UUID]) -> dict[uuid.UUID, Plan]:
    found = await uow.session.scalars(select(Plan).where(Plan.id.in_(ids)))
    return {plan.id: plan for plan in found}


async def _advance(uow: UnitOfWork, rows: Sequence[Any]) -> tuple[int, int]:
    """Renew (or end, if flagged to cancel at period end) each claimed subscription by one period."""
    plan_ids = {row.plan_id for row in rows} | {row.pending_plan_id for row in rows if row.pending_plan_id}
    plan_rows = (await uow.session.execute(select(plans).where(plans.c.id.in_(plan_ids)))).all()
    plan_by_id = {plan.id: plan for plan in plan_rows}
    renew: dict[str, list[Any]] = {
        "ids": [], "plan_ids": [], "statuses": [], "idx": [], "starts": [], "ends": [], "invoice_ids": []
    }
    new_periods: dict[str, list[Any]] = {
        "ids": [], "idx": [], "plan_ids": [], "starts": [], "ends": [], "amounts": [], "currencies": []
    }
    ended: list[uuid.UUID] = []
    for row in rows:
        plan = plan_by_id[row.plan_id]
        if row.cancel_at_period_end:
            ended.append(row.id)
            uow.emit(ended_event(row, plan.currency), occurred_at=row.current_period_end)
            continue
        plan = plan_by_id[row.pending_plan_id] if row.pending_plan_id else plan
        index, start = row.current_period_index + 1, row.current_period_end
        end = Schedule(row.anchor, row.anchor_period_index, plan.interval, plan.interval_count).end_of(index)
        status = "active" if row.status == "trialing" else row.status
        invoice_id = new_id()
        for key, value in zip(renew, (row.id, plan.id, status, index, start, end, invoice_id), strict=True):
            renew[key].append(value)
        for key, value in zip(new_periods, (row.id, index, plan.id, start, end, plan.amount, plan.currency)):
            new_periods[key].append(value)
        uow.emit(
            SubscriptionRenewed(
                subscription_id=row.id,
                customer_id=row.customer_id,
                plan_id=plan.id,
                plan_name=plan.name,
                amount=plan.amount,
                currency=plan.currency,
                interval=plan.interval,
                interval_count=plan.interval_count,
                period_start=start,
                period_end=end,
                status=status,
                payment_method_id=row.payment_method_id,
                period_index=index,
                invoice_id=invoice_id,
            ),
            occurred_at=start,
        )
    if renew["ids"]:
        await uow.session.execute(_INSERT_PERIODS, new_periods)
        await uow.session.execute(_RENEW, renew)
    if ended:
        await uow.session.execute(_END, {"ids": ended})
    return len(renew["ids"]), len(ended)


def ended_event(row: Any, currency: str) -> SubscriptionCanceled:
    """A cancel-at-period-end taking effect: nothing unused, so nothing credited."""
    return SubscriptionCanceled(
        subscription_id=row.id,
        customer_id=row.customer_id,
        canceled_at=row.canceled_at or row.current_period_end,
        at_period_end=True,
        ends_at=row.current_period_end,
        period_start=row.current_period_start,
        period_end=row.current_period_end,
        credit_amount=0,
        currency=currency,
        lines=[],
    )
