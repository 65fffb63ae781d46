"""Queries over plans, subscriptions and periods that more than one operation needs."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from .models import OverdueInvoice, Plan, Subscription, SubscriptionPeriod, VoidedInvoice


async def get_plan(session: AsyncSession, plan_id: uuid.UUID) -> Plan | None:
    return await session.get(Plan, plan_id)


async def find_or_create_plan(
    session: AsyncSession, *, name: str, amount: int, currency: str, interval: str, create: bool
) -> Plan | None:
    """The live plan with exactly this name, price and interval; created if missing and `create` is set.

    A transaction-scoped advisory lock on the plan's identity serialises concurrent finds-or-creates,
    so two requests naming the same new plan share one plan rather than making twins.
    """
    identity = f"plan:{name}:{amount}:{currency}:{interval}"
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": identity})
    plan = await session.scalar(
        select(Plan)
        .where(
            Plan.name == name,
            Plan.amount == amount,
            Plan.currency == currency,
            Plan.interval == interval,
            Plan.interval_count == 1,
            Plan.archived_at.is_(None),
        )
        .order_by(Plan.id)
        .limit(1)
    )
    if plan is None and create:
        plan = Plan(name=name, amount=amount, currency=currency, interval=interval, interval_count=1, trial_days=0)
        session.add(plan)
        await session.flush()
    return plan


async def lock_subscription(session: AsyncSession, subscription_id: uuid.UUID) -> Subscription | None:
    """The subscription with its plan, locked until the end of the transaction."""
    return await session.scalar(
        select(Subscription)
        .options(joinedload(Subscription.plan))
        .where(Subscription.id == subscription_id)
        .with_for_update(of=Subscription)
    )


async def read_subscription(session: AsyncSession, subscription_id: uuid.UUID) -> Subscription | None:
    return await session.scalar(
        select(Subscription).options(joinedload(Subscription.plan)).where(Subscription.id == subscription_id)
    )


async def lock_period(session: AsyncSession, subscription_id: uuid.UUID, index: int) -> SubscriptionPeriod | None:
    return await session.get(SubscriptionPeriod, (subscription_id, index), with_for_update=True)


async def lock_periods_ending_after(
    session: AsyncSession, subscription_id: uuid.UUID, at: datetime, up_to_index: int
) -> list[SubscriptionPeriod]:
    """The (locked) periods up to `up_to_index` that end after `at`, oldest first: the one `at` falls in, and those
    a billing run ahead of now has billed after it."""
    rows = await session.scalars(
        select(SubscriptionPeriod)
        .where(
            SubscriptionPeriod.subscription_id == subscription_id,
            SubscriptionPeriod.period_end > at,
            SubscriptionPeriod.period_index <= up_to_index,
        )
        .order_by(SubscriptionPeriod.period_index)
        .with_for_update()
    )
    return list(rows)


async def lock_paid_period(
    session: AsyncSession, subscription_id: uuid.UUID, period_start: datetime | None, paid_at: datetime
) -> SubscriptionPeriod | None:
    """The period an invoice paid: the one it names, else the one containing paid_at, else the last begun."""
    base = select(SubscriptionPeriod).where(SubscriptionPeriod.subscription_id == subscription_id).with_for_update()
    if period_start is not None:
        named = await session.scalar(base.where(SubscriptionPeriod.period_start == period_start))
        if named is not None:
            return named
    return await session.scalar(
        base.where(SubscriptionPeriod.period_start <= paid_at)
        .order_by(SubscriptionPeriod.period_index.desc())
        .limit(1)
    )


async def end_of_paid_service(session: AsyncSession, subscription_id: uuid.UUID) -> datetime | None:
    """The end of the latest period that is paid (or cost nothing, like a trial)."""
    return await session.scalar(
        select(func.max(SubscriptionPeriod.period_end)).where(
            SubscriptionPeriod.subscription_id == subscription_id,
            or_(SubscriptionPeriod.amount == 0, SubscriptionPeriod.amount_paid > 0),
        )
    )


async def paid_since(session: AsyncSession, subscription_id: uuid.UUID, since: datetime) -> bool:
    """Whether a payment was recorded at or after `since` for a period that had begun by then (guards against
    stale dunning events: what dunning chased at `since` was billed by then, so a payment of a later period, say
    one a catching-up billing run billed and charged at once, does not make it stale)."""
    found = await session.scalar(
        select(SubscriptionPeriod.period_index)
        .where(
            SubscriptionPeriod.subscription_id == subscription_id,
            SubscriptionPeriod.paid_at >= since,
            SubscriptionPeriod.period_start <= since,
        )
        .limit(1)
    )
    return found is not None


async def remember_voided_invoice(
    session: AsyncSession, invoice_id: uuid.UUID, subscription_id: uuid.UUID, voided_at: datetime
) -> None:
    await session.execute(
        insert(VoidedInvoice)
        .values(invoice_id=invoice_id, subscription_id=subscription_id, voided_at=voided_at)
        .on_conflict_do_nothing(index_elements=[VoidedInvoice.invoice_id])
    )


async def is_voided(session: AsyncSession, invoice_id: uuid.UUID | None) -> bool:
    """Whether this invoice was voided (dunning's events about it may arrive after its invoice.voided)."""
    if invoice_id is None:
        return False
    return await session.get(VoidedInvoice, invoice_id) is not None


async def remember_overdue_invoice(
    session: AsyncSession, invoice_id: uuid.UUID | None, subscription_id: uuid.UUID, since: datetime
) -> None:
    """Record that dunning chases this invoice of the subscription (the first record stays)."""
    if invoice_id is None:
        return
    await session.execute(
        insert(OverdueInvoice)
        .values(invoice_id=invoice_id, subscription_id=subscription_id, since=since)
        .on_conflict_do_nothing(index_elements=[OverdueInvoice.invoice_id])
    )


async def still_overdue(session: AsyncSession, subscription_id: uuid.UUID, settled_invoice_id: uuid.UUID) -> bool:
    """Forget the overdue invoice that was paid or voided; whether dunning still chases another of the
    subscription's invoices."""
    await session.execute(delete(OverdueInvoice).where(OverdueInvoice.invoice_id == settled_invoice_id))
    return await any_overdue(session, subscription_id)


async def any_overdue(session: AsyncSession, subscription_id: uuid.UUID) -> bool:
    """Whether dunning chases (or gave up on) an invoice of the subscription that is neither paid nor voided."""
    left = await session.scalar(
        select(OverdueInvoice.invoice_id).where(OverdueInvoice.subscription_id == subscription_id).limit(1)
    )
    return left is not None
