"""Subscribe a customer to a plan: the first period (a trial, or a paid period from now) and its event."""

from __future__ import annotations

import uuid
from datetime import datetime

from billing_shared.errors import ApiError
from billing_shared.db import UnitOfWork
from billing_shared.ids import new_id

from ..db.models import Plan, Subscription, SubscriptionPeriod
from ..domain.schedule import start_schedule
from ..domain.states import SubscriptionStatus
from . import events


def require_live_plan(plan: Plan | None, field: str = "plan_id") -> Plan:
    if plan is None:
        raise ApiError(422, "unknown_plan", "no plan with this id", field=field)
    if plan.archived_at is not None:
        raise ApiError(422, "plan_archived", f"plan {plan.name!r} is archived and takes no new subscriptions", field=field)
    return plan


async def subscribe(
    uow: UnitOfWork,
    *,
    customer_id: uuid.UUID,
    plan: Plan,
    payment_method_id: uuid.UUID | None,
    trial_days: int | None,
    now: datetime,
) -> Subscription:
    """Create the subscription, its period 0 and subscription.created, in the caller's transaction."""
    days = plan.trial_days if trial_days is None else trial_days
    start = start_schedule(now, plan.interval, plan.interval_count, days)
    status = SubscriptionStatus.TRIALING if start.trial_end else SubscriptionStatus.ACTIVE
    sub = Subscription(
        id=new_id(),
        customer_id=customer_id,
        plan_id=plan.id,
        payment_method_id=payment_method_id,
        status=status.value,
        anchor=start.schedule.anchor,
        anchor_period_index=start.schedule.anchor_index,
        current_period_index=0,
        current_period_start=start.first.start,
        current_period_end=start.first.end,
        trial_end=start.trial_end,
        cancel_at_period_end=False,
        period_invoice_id=new_id(),
        created_at=now,
        updated_at=now,
    )
    sub.plan = plan
    amount = 0 if start.trial_end else plan.amount
    uow.session.add(sub)
    await uow.session.flush()  # the period row references it
    uow.session.add(
        SubscriptionPeriod(
            subscription_id=sub.id,
            period_index=0,
            plan_id=plan.id,
            kind="trial" if start.trial_end else "regular",
            period_start=start.first.start,
            period_end=start.first.end,
            amount=amount,
            currency=plan.currency,
            amount_paid=0,
            amount_credited=0,
        )
    )
    await uow.session.flush()
    uow.emit(events.created(sub, plan, start.first, amount), occurred_at=now)
    return sub
