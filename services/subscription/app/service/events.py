"""Build the subscription events of the catalog from rows (one place, so every emitter agrees)."""

from __future__ import annotations

from collections.abc import Iterable

from billing_shared.contracts import ProrationLine as LineContract
from billing_shared.contracts import SubscriptionCreated, SubscriptionRenewed

from ..db.models import Plan, Subscription
from ..domain.periods import Period
from ..domain.proration import ProrationLine


def proration_lines(lines: Iterable[ProrationLine], period: Period) -> list[LineContract]:
    return [
        LineContract(
            description=line.description,
            amount=line.amount,
            currency=line.currency,
            unused_days=line.unused_days,
            days_in_period=line.days_in_period,
            period_start=period.start,
            period_end=period.end,
        )
        for line in lines
    ]


def created(sub: Subscription, plan: Plan, first: Period, amount: int) -> SubscriptionCreated:
    return SubscriptionCreated(
        subscription_id=sub.id,
        customer_id=sub.customer_id,
        plan_id=plan.id,
        plan_name=plan.name,
        amount=amount,
        currency=plan.currency,
        interval=plan.interval,
        interval_count=plan.interval_count,
        period_start=first.start,
        period_end=first.end,
        status=sub.status,
        payment_method_id=sub.payment_method_id,
        trial_end=sub.trial_end,
        invoice_id=sub.period_invoice_id,
    )


def renewed(sub: Subscription, plan: Plan, period: Period) -> SubscriptionRenewed:
    return SubscriptionRenewed(
        subscription_id=sub.id,
        customer_id=sub.customer_id,
        plan_id=plan.id,
        plan_name=plan.name,
        amount=plan.amount,
        currency=plan.currency,
        interval=plan.interval,
        interval_count=plan.interval_count,
        period_start=period.start,
        period_end=period.end,
        status=sub.status,
        payment_method_id=sub.payment_method_id,
        period_index=period.index,
        invoice_id=sub.period_invoice_id,
    )
