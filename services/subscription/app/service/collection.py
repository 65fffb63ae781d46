"""What collecting money does to a subscription: paid periods, past due, suspension and reactivation.

These run from consumed events, at the time the event says it happened (occurred_at).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import datetime

from billing_shared.contracts import (
    ProrationLine,
    SubscriptionCanceled,
    SubscriptionPlanChanged,
    SubscriptionReactivated,
    SubscriptionSuspended,
)
from billing_shared.db import UnitOfWork

from ..db.models import Subscription, SubscriptionPeriod
from ..db.repository import (
    end_of_paid_service,
    is_voided,
    lock_paid_period,
    lock_subscription,
    paid_since,
    remember_overdue_invoice,
    remember_voided_invoice,
    still_overdue,
)
from ..domain.periods import Period
from ..domain.proration import unused_credit
from ..domain.states import SubscriptionStatus
from . import events
from .billing_run import ended_event
from .lifecycle import can_become, next_plan, restart_period

log = logging.getLogger(__name__)
S = SubscriptionStatus


async def record_payment(
    uow: UnitOfWork,
    subscription_id: uuid.UUID,
    *,
    invoice_id: uuid.UUID,
    amount_paid: int,
    paid_at: datetime,
    period_start: datetime | None,
    at: datetime,
) -> Subscription | None:
    """Add an invoice payment to the period it paid; a past-due or suspended subscription becomes active,
    unless dunning still chases another of its invoices.

    A payment for a period with an earlier plan change or immediate cancel earns the credit they would have
    given had it come first: see `credit_late_plan_change` and `credit_late_payment`.
    """
    sub = await lock_subscription(uow.session, subscription_id)
    if sub is None:
        log.info("invoice.paid for unknown subscription %s ignored", subscription_id)
        return None
    period = await lock_paid_period(uow.session, sub.id, period_start, paid_at)
    if period is not None and amount_paid > 0:
        period.amount_paid += amount_paid
        period.paid_at = paid_at
        credit_late_plan_change(uow, sub, period, amount_paid, at)
        credit_late_payment(uow, sub, period, at)
    await _reactivate_if_settled(uow, sub, invoice_id, at)
    return sub


async def _reactivate_if_settled(
    uow: UnitOfWork, sub: Subscription, settled_invoice_id: uuid.UUID, at: datetime
) -> None:
    """An invoice was paid or voided: a past-due or suspended subscription is active again if it was the last
    one dunning chased (one made past due before this release has none on record: any invoice settles it). A
    paused one forgets it, so that it resumes active."""
    if sub.status == S.PAUSED:
        await still_overdue(uow.session, sub.id, settled_invoice_id)
    elif (
        sub.status in (S.PAST_DUE, S.SUSPENDED)
        and can_become(sub, S.ACTIVE)
        and not await still_overdue(uow.session, sub.id, settled_invoice_id)
    ):
        await reactivate(uow, sub, at)


def credit_late_plan_change(
    uow: UnitOfWork, sub: Subscription, row: SubscriptionPeriod, paid: int, at: datetime
) -> None:
    """Credit what plan changes in this period owed but could not credit while it was unpaid, out of `paid`.

    Emits subscription.plan_changed with correction=true and that one credit line (the invoice service
    credits it on the period's invoices).
    """
    extra = min(row.change_credit_owed, paid, row.creditable)
    if extra <= 0:
        return
    row.change_credit_owed -= extra
    row.amount_credited += extra
    period = Period(row.period_start, row.period_end, row.period_index)
    uow.emit(
        SubscriptionPlanChanged(
            subscription_id=sub.id,
            customer_id=sub.customer_id,
            old_plan_id=sub.plan_id,
            new_plan_id=sub.plan_id,
            new_plan_name=sub.plan.name,
            effective="now",
            effective_at=at,
            period_start=period.start,
            period_end=period.end,
            currency=row.currency,
            lines=[
                ProrationLine(
                    description="Unused time of an earlier plan, now paid", amount=-extra, currency=row.currency,
                    period_start=period.start, period_end=period.end,
                )
            ],
            correction=True,
        ),
        occurred_at=at,
    )
    log.info("late payment for subscription %s: %s %s owed by a plan change credited", sub.id, extra, row.currency)


def credit_late_payment(uow: UnitOfWork, sub: Subscription, row: SubscriptionPeriod, at: datetime) -> int:
    """Credit what an immediate cancel in this period owes now that more was paid for it, less what it credited.

    Same proration, same instant as the cancel, never more than paid in total: a replayed or further payment
    credits nothing more once the unused days are credited in full. Emits subscription.canceled with
    correction=true and the extra credit (the invoice service refunds it); returns the extra credit.
    """
    prorated_at = row.cancel_prorated_at
    if prorated_at is None:  # no immediate cancel fell inside this period
        return 0
    period = Period(row.period_start, row.period_end, row.period_index)
    credited_otherwise = row.amount_credited - row.cancel_credited  # e.g. by a plan change earlier in the period
    creditable = max(row.amount_paid - credited_otherwise, 0)
    owed = unused_credit(row.amount, creditable, row.currency, period, prorated_at, sub.plan.name)
    extra = -owed.amount - row.cancel_credited
    if extra <= 0:
        return 0
    row.amount_credited += extra
    row.cancel_credited += extra
    canceled_at = sub.canceled_at or prorated_at
    uow.emit(
        SubscriptionCanceled(
            subscription_id=sub.id,
            customer_id=sub.customer_id,
            canceled_at=canceled_at,
            at_period_end=False,
            ends_at=sub.ended_at or canceled_at,
            period_start=period.start,
            period_end=period.end,
            credit_amount=extra,
            currency=row.currency,
            lines=events.proration_lines([replace(owed, amount=-extra)], period),
            correction=True,
        ),
        occurred_at=at,
    )
    log.info("late payment for canceled subscription %s: %s %s more credited", sub.id, extra, row.currency)
    return extra


async def reactivate(uow: UnitOfWork, sub: Subscription, at: datetime) -> None:
    """Back to active. A suspension that outlived its period restarts billing from now (like a resume),
    rather than billing the months the customer had no service; or, if it was to cancel at that period's
    end, the subscription ends there instead. A subscription suspended while paused goes back to its pause
    (it resumes as any paused one does), unless the pause was to end before now: then it resumes now, never
    at that past instant (the months it was suspended are not billed)."""
    was_suspended = sub.status == S.SUSPENDED
    back_to_pause = was_suspended and sub.paused_at is not None and (sub.resumes_at is None or sub.resumes_at > at)
    if not back_to_pause and was_suspended and sub.cancel_at_period_end and at >= sub.current_period_end:
        # It was to end with the period that is over (the billing run had not ended it yet): end it there,
        # rather than restart billing for a period the customer canceled.
        sub.status, sub.ended_at, sub.updated_at = S.CANCELED.value, sub.current_period_end, at
        sub.cancel_at_period_end, sub.pending_plan_id = False, None
        uow.emit(ended_event(sub, sub.plan.currency), occurred_at=sub.current_period_end)
        return
    if back_to_pause:
        sub.status, sub.service_ends_at, sub.updated_at = S.PAUSED.value, None, at
    else:
        sub.status, sub.service_ends_at, sub.updated_at = S.ACTIVE.value, None, at
        sub.paused_at, sub.resumes_at = None, None
        if was_suspended and at >= sub.current_period_end:
            await restart_period(uow, sub, await next_plan(uow, sub), at)
    uow.emit(
        SubscriptionReactivated(subscription_id=sub.id, customer_id=sub.customer_id, status=sub.status, at=at),
        occurred_at=at,
    )


async def forgive(uow: UnitOfWork, subscription_id: uuid.UUID, invoice_id: uuid.UUID, at: datetime) -> None:
    """An admin voided an unpaid invoice: what made the subscription past due or suspended is owed no more, so it
    is active again, as if that invoice had been paid (dunning closes its case on the same event), unless another
    of its invoices is still chased. The invoice is remembered: what dunning announced about it before it heard of
    the void may still come, and changes nothing."""
    sub = await lock_subscription(uow.session, subscription_id)
    if sub is None:
        return
    await remember_voided_invoice(uow.session, invoice_id, sub.id, at)
    await _reactivate_if_settled(uow, sub, invoice_id, at)


async def _chase_is_stale(uow: UnitOfWork, sub: Subscription, at: datetime, invoice_id: uuid.UUID | None) -> bool:
    """Whether what dunning announced at `at` is owed no more: a payment came in since, or the invoice was voided
    (the void can reach this service before dunning's event about it)."""
    return await paid_since(uow.session, sub.id, at) or await is_voided(uow.session, invoice_id)


async def mark_past_due(
    uow: UnitOfWork, subscription_id: uuid.UUID, at: datetime, invoice_id: uuid.UUID | None = None
) -> None:
    """A payment failed and dunning retries it: active becomes past_due (unless a payment came in since, or the
    invoice it retries was voided). The invoice is recorded as overdue, also when the subscription already was
    past due or suspended for another one, or paused (a charge of before the pause: it resumes past due)."""
    sub = await lock_subscription(uow.session, subscription_id)
    if (
        sub is None
        or sub.status not in (S.ACTIVE, S.PAST_DUE, S.SUSPENDED, S.PAUSED)
        or await _chase_is_stale(uow, sub, at, invoice_id)
    ):
        return
    await remember_overdue_invoice(uow.session, invoice_id, sub.id, at)
    if sub.status == S.ACTIVE:
        sub.status, sub.updated_at = S.PAST_DUE.value, at


async def suspend(
    uow: UnitOfWork,
    subscription_id: uuid.UUID,
    at: datetime,
    invoice_id: uuid.UUID | None = None,
    owed: tuple[int, str] | None = None,
) -> None:
    """Dunning gave up: suspended, but service continues to the end of the period already paid. Not if a payment
    came in since, or the invoice it chased was voided (its void can reach this service first). The invoice stays
    recorded as overdue until it is paid or voided. A paused subscription is suspended too (it has no service to
    continue) and keeps its paused_at: once its debt is settled it is back in its pause (see `reactivate`).
    subscription.suspended names that invoice and what it `owed` (amount, currency): the customer's suspension
    email is written from it, so it goes out only when this service suspends."""
    sub = await lock_subscription(uow.session, subscription_id)
    if (
        sub is None
        or not (sub.status == S.SUSPENDED or can_become(sub, S.SUSPENDED))
        or await _chase_is_stale(uow, sub, at, invoice_id)
    ):
        if sub is not None:
            log.info("dunning.exhausted for %s subscription %s ignored", sub.status, sub.id)
        return
    await remember_overdue_invoice(uow.session, invoice_id, sub.id, at)
    if sub.status == S.SUSPENDED:  # already, for another invoice
        return
    paid_until = None if sub.status == S.PAUSED else await end_of_paid_service(uow.session, sub.id)
    service_ends_at = paid_until if paid_until is not None and paid_until > at else at
    sub.status, sub.service_ends_at, sub.updated_at = S.SUSPENDED.value, service_ends_at, at
    uow.emit(
        SubscriptionSuspended(
            subscription_id=sub.id,
            customer_id=sub.customer_id,
            status=sub.status,
            at=at,
            service_ends_at=service_ends_at,
            invoice_id=invoice_id,
            amount=owed[0] if owed else None,
            currency=owed[1] if owed else None,
        ),
        occurred_at=at,
    )
