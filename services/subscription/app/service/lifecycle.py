"""Cancel, change plan, pause and resume a locked subscription, emitting the event of each change.

Every function runs inside the caller's unit of work on a subscription locked FOR UPDATE, and refuses a
change the status table does not allow with a 409 before writing anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from billing_shared.contracts import (
    ProrationLine as LineContract,
)
from billing_shared.contracts import (
    SubscriptionCanceled,
    SubscriptionPaused,
    SubscriptionPlanChanged,
    SubscriptionResumed,
)
from billing_shared.db import UnitOfWork
from billing_shared.errors import ApiError
from billing_shared.ids import new_id

from ..db.models import Plan, Subscription, SubscriptionPeriod
from ..db.repository import any_overdue, lock_period, lock_periods_ending_after
from ..domain.periods import Period
from ..domain.proration import plan_change_lines, prorate, unused_credit
from ..domain.schedule import Schedule, resumed_schedule
from ..domain.states import InvalidTransition, SubscriptionStatus, can_transition, transition
from . import events

S = SubscriptionStatus
RENEWABLE = (S.TRIALING.value, S.ACTIVE.value, S.PAST_DUE.value)


@dataclass
class Proration:
    """What a cancel or plan change credited and charged now (lines signed: negative = credit)."""

    currency: str
    lines: list[LineContract] = field(default_factory=list)

    @property
    def credit_amount(self) -> int:
        return -sum(line.amount for line in self.lines if line.amount < 0)


def _conflict(code: str, message: str) -> ApiError:
    return ApiError(409, code, message)


def _move(sub: Subscription, target: S, code: str = "invalid_status") -> None:
    try:
        sub.status = transition(sub.status, target).value
    except InvalidTransition as exc:
        raise _conflict(code, str(exc)) from None


def current_period(sub: Subscription) -> Period:
    return Period(sub.current_period_start, sub.current_period_end, sub.current_period_index)


def proration_instant(
    sub: Subscription, requested: datetime | None, now: datetime, *, before_period: bool = False
) -> datetime:
    """Where to prorate: the admin's proration_date, which must fall inside the current period, or now.

    A billing run with an as_of ahead of now may have started the current period already billed: before
    that period begins, now prorates a plan change at its start (all of it unused), not outside it (nothing
    credited or charged). A cancel (`before_period`) prorates at now itself: the period now falls in is
    credited its unused days, and the periods billed ahead all of theirs."""
    if requested is None:
        return now if before_period else max(now, sub.current_period_start)
    if not sub.current_period_start <= requested < sub.current_period_end:
        raise ApiError(
            422,
            "proration_date_outside_period",
            f"proration_date must fall inside the current period [{sub.current_period_start.isoformat()}, "
            f"{sub.current_period_end.isoformat()})",
            field="proration_date",
        )
    return requested


async def _period_row(uow: UnitOfWork, sub: Subscription) -> SubscriptionPeriod:
    row = await lock_period(uow.session, sub.id, sub.current_period_index)
    if row is None:  # every subscription writes its period row with the period: this is a bug, not bad input
        raise RuntimeError(f"subscription {sub.id} has no row for period {sub.current_period_index}")
    return row


async def cancel(
    uow: UnitOfWork, sub: Subscription, *, at_period_end: bool, at: datetime, now: datetime
) -> Proration:
    """End now with a credit for the paid, unused part of the period (and of any period a billing run ahead of
    now has billed after it), or flag the end of the period."""
    currency = sub.plan.currency
    if sub.status == S.CANCELED:
        raise _conflict("already_canceled", "this subscription is already canceled")
    if at_period_end:
        if sub.cancel_at_period_end:
            raise _conflict("cancel_already_scheduled", "this subscription already cancels at the end of its period")
        if sub.status not in RENEWABLE:
            raise _conflict(
                "invalid_status",
                f"a {sub.status} subscription does not reach its period end; cancel it immediately instead",
            )
        sub.cancel_at_period_end, sub.canceled_at, sub.updated_at = True, now, now
        return Proration(currency)
    _move(sub, S.CANCELED)
    period = current_period(sub)
    proration = Proration(currency)
    # The period `at` falls in, and every period a billing run ahead of now has billed after it (all unused).
    for row in await lock_periods_ending_after(uow.session, sub.id, at, sub.current_period_index):
        row_period = Period(row.period_start, row.period_end, row.period_index)
        if at in row_period:
            period = row_period
        prorated_at = max(at, row.period_start)
        row.cancel_prorated_at = prorated_at  # a payment for this period recorded later is credited then
        if row.creditable > 0:
            plan = sub.plan if row.plan_id == sub.plan_id else await uow.session.get(Plan, row.plan_id)
            name = plan.name if plan is not None else sub.plan.name
            line = unused_credit(row.amount, row.creditable, row.currency, row_period, prorated_at, name)
            if line.amount:
                row.amount_credited += -line.amount
                row.cancel_credited += -line.amount
                proration.lines += events.proration_lines([line], row_period)
    sub.canceled_at, sub.ended_at, sub.updated_at = now, now, now
    sub.cancel_at_period_end, sub.pending_plan_id = False, None
    uow.emit(
        SubscriptionCanceled(
            subscription_id=sub.id,
            customer_id=sub.customer_id,
            canceled_at=now,
            at_period_end=False,
            ends_at=now,
            period_start=period.start,
            period_end=period.end,
            credit_amount=proration.credit_amount,
            currency=proration.currency,
            lines=proration.lines,
        ),
        occurred_at=now,
    )
    return proration


def _check_change(sub: Subscription, old: Plan, new: Plan) -> None:
    if sub.status not in RENEWABLE:
        raise _conflict("invalid_status", f"the plan of a {sub.status} subscription cannot be changed")
    if new.id == old.id:
        raise ApiError(422, "same_plan", "the subscription is already on this plan", field="plan_id")
    if new.currency != old.currency:
        raise ApiError(
            422, "currency_mismatch", f"the new plan is in {new.currency}, the subscription in {old.currency}", field="plan_id"
        )
    if (new.interval, new.interval_count) != (old.interval, old.interval_count):
        raise ApiError(
            422,
            "interval_mismatch",
            f"the new plan bills every {new.interval_count} {new.interval}(s), the subscription every "
            f"{old.interval_count} {old.interval}(s); a plan change keeps the billing interval",
            field="plan_id",
        )


async def change_plan(
    uow: UnitOfWork,
    sub: Subscription,
    new: Plan,
    *,
    effective: Literal["now", "period_end"] | None,
    at: datetime,
    now: datetime,
) -> Proration:
    """Upgrades apply now with proration (credit unused old, charge remaining new); downgrades at period end."""
    old = sub.plan
    _check_change(sub, old, new)
    when = effective or ("now" if new.amount > old.amount else "period_end")
    period = current_period(sub)
    proration = Proration(new.currency)
    if when == "period_end":
        sub.pending_plan_id, sub.updated_at = new.id, now
        effective_at = period.end
    else:
        row = await _period_row(uow, sub)
        if row.kind == "regular" and at in period:
            credit, charge = plan_change_lines(
                row.amount, row.creditable, new.amount, row.currency, period, at, old.name, new.name
            )
            # Only a net credit goes back to the customer (a credit note); a credit netted against the charge
            # paid for the new plan's days, which a later cancel credits in their turn.
            row.amount_credited += max(-(credit.amount + charge.amount), 0)
            # The unused days the credit could not cover, for want of payment: a later payment earns them.
            row.change_credit_owed += prorate(row.amount, credit.unused_days, credit.days_in_period) + credit.amount
            row.amount = new.amount
            proration.lines = events.proration_lines([credit, charge], period)
        # In a trial, or once the period has lapsed unrenewed, nothing is prorated: the next period bills the new plan.
        row.plan_id = new.id
        sub.plan_id, sub.pending_plan_id, sub.updated_at = new.id, None, now
        sub.plan = new
        effective_at = at
    uow.emit(
        SubscriptionPlanChanged(
            subscription_id=sub.id,
            customer_id=sub.customer_id,
            old_plan_id=old.id,
            new_plan_id=new.id,
            new_plan_name=new.name,
            effective=when,
            effective_at=effective_at,
            period_start=period.start,
            period_end=period.end,
            currency=new.currency,
            lines=proration.lines,
            change_id=new_id(),
        ),
        occurred_at=now,
    )
    return proration


def pause(uow: UnitOfWork, sub: Subscription, *, resumes_at: datetime | None, now: datetime) -> None:
    if sub.status == S.PAUSED:
        raise _conflict("already_paused", "this subscription is already paused")
    if sub.cancel_at_period_end:
        raise _conflict("cancel_scheduled", "this subscription cancels at the end of its period and cannot be paused")
    if sub.status == S.SUSPENDED:  # the table lets a suspension end in a pause it began in, not a pause begin
        raise _conflict("invalid_status", "a suspended subscription cannot be paused; pay its overdue invoice first")
    if resumes_at is not None and resumes_at <= now:
        raise ApiError(422, "invalid_request", "resumes_at must be in the future", field="resumes_at")
    _move(sub, S.PAUSED)
    sub.paused_at, sub.resumes_at, sub.updated_at = now, resumes_at, now
    uow.emit(
        SubscriptionPaused(
            subscription_id=sub.id, customer_id=sub.customer_id, status=sub.status, at=now, resumes_at=resumes_at
        ),
        occurred_at=now,
    )


async def next_plan(uow: UnitOfWork, sub: Subscription) -> Plan:
    """The plan the next period bills: a scheduled downgrade if there is one, else the current plan."""
    if sub.pending_plan_id is None:
        return sub.plan
    pending = await uow.session.get(Plan, sub.pending_plan_id)
    return pending or sub.plan


async def restart_period(uow: UnitOfWork, sub: Subscription, plan: Plan, at: datetime) -> Period:
    """A fresh period anchored at `at` (after a pause or suspension outlived the period), billed as a renewal."""
    schedule = resumed_schedule(at, sub.current_period_index + 1, plan.interval, plan.interval_count)
    await start_period(uow, sub, plan, schedule)
    return current_period(sub)


async def start_period(uow: UnitOfWork, sub: Subscription, plan: Plan, schedule: Schedule) -> None:
    period = schedule.period(sub.current_period_index + 1)
    uow.session.add(
        SubscriptionPeriod(
            subscription_id=sub.id,
            period_index=period.index,
            plan_id=plan.id,
            kind="regular",
            period_start=period.start,
            period_end=period.end,
            amount=plan.amount,
            currency=plan.currency,
            amount_paid=0,
            amount_credited=0,
        )
    )
    sub.anchor, sub.anchor_period_index = schedule.anchor, schedule.anchor_index
    sub.current_period_index, sub.current_period_start, sub.current_period_end = period.index, period.start, period.end
    sub.plan_id, sub.pending_plan_id = plan.id, None
    sub.plan = plan
    sub.period_invoice_id = new_id()
    uow.emit(events.renewed(sub, plan, period), occurred_at=period.start)


async def resume(uow: UnitOfWork, sub: Subscription, *, at: datetime) -> None:
    """Resume at `at`. Inside the paused period, that (already billed) period simply continues, a trial as a
    trial; after it ended, a fresh period starts at `at` and is billed as a renewal, so paused time is never
    billed. A charge of before the pause that failed meanwhile, still chased by dunning, resumes it past due."""
    if sub.status != S.PAUSED:
        raise _conflict("not_paused", f"only a paused subscription can be resumed; this one is {sub.status}")
    in_trial = sub.trial_end is not None and at < min(sub.trial_end, sub.current_period_end)
    if await any_overdue(uow.session, sub.id):
        _move(sub, S.PAST_DUE)
    else:
        _move(sub, S.TRIALING if in_trial else S.ACTIVE)
    sub.paused_at, sub.resumes_at, sub.updated_at = None, None, at
    if at >= sub.current_period_end:
        await restart_period(uow, sub, await next_plan(uow, sub), at)
    uow.emit(
        SubscriptionResumed(subscription_id=sub.id, customer_id=sub.customer_id, status=sub.status, at=at),
        occurred_at=at,
    )


def can_become(sub: Subscription, target: S) -> bool:
    return sub.status != target and can_transition(sub.status, target)
