"""Subscription facts -> invoices: one per period (created, renewed), one per immediate plan change, credit notes."""

from __future__ import annotations

from datetime import datetime

from billing_shared.contracts import (
    SubscriptionCanceled,
    SubscriptionCreated,
    SubscriptionPlanChanged,
    SubscriptionRenewed,
)
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..crediting import credit_invoices
from ..domain.invoices import totals
from ..domain.lines import period_line, proration_lines
from ..invoicing import (
    AwaitingEarlierEvent,
    Draft,
    Terms,
    finalize,
    latest_payment_method,
    open_invoice,
    owing_first,
    period_invoices,
)


async def _bill_period(
    uow: UnitOfWork, terms: Terms, event: SubscriptionCreated | SubscriptionRenewed, reason: str, envelope: Envelope
) -> None:
    line = period_line(
        plan_name=event.plan_name,
        amount=event.amount,
        currency=event.currency,
        interval=event.interval,
        interval_count=event.interval_count,
        period_start=event.period_start,
        period_end=event.period_end,
        trial=event.status == "trialing",
    )
    draft = Draft(
        kind="period",
        billing_reason=reason,
        customer_id=event.customer_id,
        currency=event.currency,
        lines=[line],
        subscription_id=event.subscription_id,
        plan_id=event.plan_id,
        payment_method_id=event.payment_method_id,
        period_start=event.period_start,
        period_end=event.period_end,
        effective_at=event.period_start,
        id=event.invoice_id,
    )
    invoice = await open_invoice(uow.session, draft, envelope.occurred_at)
    if invoice is not None:  # None: this period was invoiced already (a replay under another event id)
        await finalize(uow, terms, invoice, envelope.occurred_at)


async def handle_subscription_created(envelope: Envelope, uow: UnitOfWork, *, terms: Terms) -> None:
    await _bill_period(uow, terms, envelope.payload_as(SubscriptionCreated), "subscription_create", envelope)


async def handle_subscription_renewed(envelope: Envelope, uow: UnitOfWork, *, terms: Terms) -> None:
    await _bill_period(uow, terms, envelope.payload_as(SubscriptionRenewed), "subscription_cycle", envelope)


async def handle_subscription_plan_changed(envelope: Envelope, uow: UnitOfWork, *, terms: Terms) -> None:
    """A net charge is invoiced (and charged) now; a net credit becomes credit notes on the period's invoices."""
    event = envelope.payload_as(SubscriptionPlanChanged)
    if event.effective != "now" or not event.lines:
        return  # a change at period end shows up on the renewal invoice
    lines = proration_lines(event.lines, event.currency)
    net = totals(lines, event.currency).total
    at = envelope.occurred_at
    if net < 0:
        invoices = owing_first(await period_invoices(uow.session, event.subscription_id, event.period_start))
        if not invoices:
            raise AwaitingEarlierEvent(
                f"no invoice yet for subscription {event.subscription_id} period {event.period_start}"
            )
        key = f"plan_change:{event.subscription_id}:{event.effective_at.isoformat()}"
        if event.change_id is not None:
            key = f"plan_change:{event.change_id}"
        if event.correction:  # one per late payment, like a cancellation's corrections
            key = f"{key}:correction:{envelope.event_id}"
        await credit_invoices(
            uow, terms, invoices, amount=-net, currency=event.currency, reason="plan_change", source_key=key, at=at
        )
        return
    draft = Draft(
        kind="plan_change",
        billing_reason="subscription_update",
        customer_id=event.customer_id,
        currency=event.currency,
        lines=lines,
        subscription_id=event.subscription_id,
        plan_id=event.new_plan_id,
        payment_method_id=await latest_payment_method(uow.session, event.subscription_id),
        period_start=event.period_start,
        period_end=event.period_end,
        effective_at=event.effective_at,
        change_id=event.change_id,
    )
    invoice = await open_invoice(uow.session, draft, at)
    if invoice is not None:
        await finalize(uow, terms, invoice, at)


async def handle_subscription_canceled(envelope: Envelope, uow: UnitOfWork, *, terms: Terms) -> None:
    """An immediate cancellation with a credit for unused time -> credit notes on the credited periods' invoices:
    the period the cancel fell in, and any a billing run ahead of it had billed already."""
    event = envelope.payload_as(SubscriptionCanceled)
    if event.credit_amount <= 0:
        return
    for period_start, amount in credits_by_period(event):
        invoices = await period_invoices(uow.session, event.subscription_id, period_start, before=event.canceled_at)
        if not invoices:
            raise AwaitingEarlierEvent(f"no invoice yet for subscription {event.subscription_id} period {period_start}")
        key = _cancellation_key(envelope, event)
        if period_start != event.period_start:
            key = f"{key}:period:{period_start.isoformat()}"
        await credit_invoices(
            uow, terms, invoices, amount=amount, currency=event.currency, reason="cancellation",
            source_key=key, at=envelope.occurred_at,
        )


def credits_by_period(event: SubscriptionCanceled) -> list[tuple[datetime | None, int]]:
    """What a cancellation credits on each period's invoices, by its credit lines' periods: the event's own
    period first. All of it on the event's period when its lines do not account for it by period (a producer
    older than credits of several periods)."""
    by_period: dict[datetime, int] = {}
    for line in event.lines:
        if line.amount < 0 and line.period_start is not None:
            by_period[line.period_start] = by_period.get(line.period_start, 0) - line.amount
    if event.period_start is None or sum(by_period.values()) != event.credit_amount:
        return [(event.period_start, event.credit_amount)]
    own = by_period.pop(event.period_start, 0)
    return [(event.period_start, own)] * (own > 0) + sorted(by_period.items())


def _cancellation_key(envelope: Envelope, event: SubscriptionCanceled) -> str:
    """One credit note per cancellation, plus one per correction (a payment that arrived after it)."""
    key = f"cancellation:{event.subscription_id}"
    return f"{key}:correction:{envelope.event_id}" if event.correction else key
