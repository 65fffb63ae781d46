"""Invoice use cases: open, finalize (number + due date), pay, write off, void. Each runs in the caller's unit of work.

Every state change goes through `domain.states.transition` and is announced by an event in the same
transaction (the outbox). Times are the triggering event's occurred_at (or the clock, for API calls).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert as core_insert
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing_shared.consumer import Awaiting, Retryable
from billing_shared.contracts import (
    InvoiceFinalized,
    InvoiceOverpaid,
    InvoicePaid,
    InvoicePartiallyPaid,
    InvoiceUncollectible,
    InvoiceVoided,
    PaymentSucceeded,
)
from billing_shared.db import UnitOfWork, sql_name
from billing_shared.ids import new_id

from .db.models import Customer, Invoice, InvoiceLine, InvoicePayment
from .db.numbering import next_number
from .domain import invoices as calc
from .domain.credits import Balance, apply_payment
from .domain.states import InvoiceStatus, check_voidable, transition
from .links import InvoiceLinks
from .settings import Settings

log = logging.getLogger(__name__)


# The bill-to snapshot every finalization takes, read on the driver connection (session.get costs several
# times its client CPU).
_BILL_TO = f"SELECT name, email FROM {sql_name(Customer.__table__)} WHERE id = $1"


class UnknownInvoice(LookupError):
    pass


class AwaitingEarlierEvent(Awaiting):
    """An event this one builds on (its customer's customer.created, its period's subscription event) has not been
    handled here yet. It lags for as long as the service that publishes it (or its relay) is down, so the event
    waits (up to AWAITING_RETRY_S) instead of reaching the DLQ after half a minute of quick tries."""


class CustomerNotYetKnown(AwaitingEarlierEvent):
    """The customer's customer.created has not reached this service yet: an invoice is not numbered and issued
    without its bill-to. The event comes back later (after AWAITING_RETRY_S, the DLQ: a customer that does not
    exist, an admin's typo)."""


@dataclass(frozen=True)
class Terms:
    """What invoicing needs from the settings."""

    invoice_prefix: str
    credit_note_prefix: str
    net_days: int
    links: InvoiceLinks

    @classmethod
    def from_settings(cls, settings: Settings) -> "Terms":
        return cls(
            invoice_prefix=settings.invoice_number_prefix,
            credit_note_prefix=settings.credit_note_prefix,
            net_days=settings.invoice_net_days,
            links=InvoiceLinks(settings.public_base_url, settings.invoice_link_secret, settings.invoice_link_ttl_s),
        )


@dataclass(frozen=True)
class Draft:
    """What an invoice is opened with; `effective_at` and `change_id` (with the period and kind) make it unique."""

    kind: str
    billing_reason: str
    customer_id: uuid.UUID
    currency: str
    lines: Sequence[calc.LineItem]
    subscription_id: uuid.UUID | None = None
    plan_id: uuid.UUID | None = None
    payment_method_id: uuid.UUID | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    effective_at: datetime | None = None
    change_id: uuid.UUID | None = None
    id: uuid.UUID | None = None  # the id its fact chose for it (a subscription period's), else a new one


def balance_of(invoice: Invoice) -> Balance:
    return Balance(invoice.total, invoice.amount_paid, invoice.amount_credited, invoice.amount_refunded)


async def lock_invoice(session: AsyncSession, invoice_id: uuid.UUID) -> Invoice | None:
    return await session.get(Invoice, invoice_id, with_for_update=True, populate_existing=True)


async def open_invoice(session: AsyncSession, draft: Draft, at: datetime) -> Invoice | None:
    """Insert a draft invoice with its lines; None if this period (or plan change) is already invoiced."""
    sums = calc.totals(draft.lines, draft.currency)
    # RETURNING the whole row puts the invoice in the session as inserted: no read-back after the lines.
    invoice = (
        await session.scalars(
            insert(Invoice)
            .values(
                id=draft.id or new_id(),
                status=InvoiceStatus.DRAFT.value,
                kind=draft.kind,
                billing_reason=draft.billing_reason,
                customer_id=draft.customer_id,
                subscription_id=draft.subscription_id,
                plan_id=draft.plan_id,
                payment_method_id=draft.payment_method_id,
                period_start=draft.period_start,
                period_end=draft.period_end,
                effective_at=draft.effective_at,
                change_id=draft.change_id,
                currency=draft.currency.upper(),
                subtotal=sums.subtotal,
                total=sums.total,
                amount_due=Balance(sums.total).due,
                created_at=at,
            )
            .on_conflict_do_nothing(constraint="uq_invoices_subscription_period")
            .returning(Invoice)
        )
    ).one_or_none()
    if invoice is None:
        return None
    if draft.lines:
        await session.execute(
            core_insert(InvoiceLine),
            [
                {
                    "id": new_id(),
                    "invoice_id": invoice.id,
                    "position": position,
                    "kind": line.kind,
                    "description": line.description[:500],
                    "amount": line.amount,
                    "quantity": line.quantity,
                    "currency": line.currency,
                    "period_start": line.period_start,
                    "period_end": line.period_end,
                }
                for position, line in enumerate(draft.lines, start=1)
            ],
        )
    return invoice


async def finalize(uow: UnitOfWork, terms: Terms, invoice: Invoice, at: datetime) -> None:
    """Draft -> open: bill-to snapshot, due date, the next gapless number; invoice.finalized. Not before the
    customer is known here (CustomerNotYetKnown: the whole event is tried again later).

    An invoice with nothing due is settled at once (paid, with no payment) and says so (invoice.paid).
    """
    session = uow.session
    status = transition(invoice.status, InvoiceStatus.OPEN)
    bill_to = await (await uow.driver_connection()).fetchrow(_BILL_TO, invoice.customer_id)
    if bill_to is None:
        raise CustomerNotYetKnown(f"customer {invoice.customer_id} is not known here yet: invoice not issued")
    invoice.status = status.value
    invoice.customer_name, invoice.customer_email = bill_to["name"], bill_to["email"]
    invoice.finalized_at = at
    invoice.due_at = calc.due_at(at, terms.net_days)
    invoice.amount_due = balance_of(invoice).due
    # Last statement before the commit: the series stays locked from here to the end of the transaction.
    # (No autoflush: the pending update must not reach the table before it has its number.)
    with session.no_autoflush:
        invoice.number = await next_number(session, terms.invoice_prefix)
    await session.flush()
    uow.emit(
        InvoiceFinalized(
            **_facts(invoice, terms),
            amount_due=invoice.amount_due,
            due_at=invoice.due_at,
            payment_method_id=invoice.payment_method_id,
        ),
        occurred_at=at,
    )
    if invoice.amount_due == 0:
        mark_paid(uow, terms, invoice, at, payment_id=None)


def _facts(invoice: Invoice, terms: Terms | None = None) -> dict[str, Any]:
    """What every invoice event says about its invoice (and, given the terms, its signed links)."""
    facts: dict[str, Any] = {
        "invoice_id": invoice.id,
        "number": invoice.number,
        "customer_id": invoice.customer_id,
        "subscription_id": invoice.subscription_id,
        "currency": invoice.currency,
        "total": invoice.total,
    }
    if terms is not None:
        facts["hosted_invoice_url"], facts["invoice_pdf_url"] = terms.links.urls(invoice.id)
    return facts


def mark_paid(uow: UnitOfWork, terms: Terms, invoice: Invoice, at: datetime, payment_id: uuid.UUID | None) -> None:
    invoice.status = transition(invoice.status, InvoiceStatus.PAID).value
    invoice.paid_at = at
    invoice.payment_id = payment_id or invoice.payment_id
    uow.emit(
        InvoicePaid(
            **_facts(invoice, terms),
            amount_paid=invoice.amount_paid,
            paid_at=at,
            payment_id=invoice.payment_id,
            period_start=invoice.period_start,
        ),
        occurred_at=at,
    )


def mark_void(uow: UnitOfWork, invoice: Invoice, at: datetime) -> None:
    check_voidable(invoice.status, invoice.amount_paid)
    invoice.status = InvoiceStatus.VOID.value
    invoice.voided_at = at
    invoice.amount_due = 0
    uow.emit(
        InvoiceVoided(**_facts(invoice)),
        occurred_at=at,
    )


async def record_payment(uow: UnitOfWork, terms: Terms, payment: PaymentSucceeded, at: datetime) -> None:
    """Apply a successful payment once (by payment id): the invoice is paid when nothing is left due, and what
    it did not owe is refunded (invoice.overpaid)."""
    if payment.invoice_id is None:
        return
    session = uow.session
    invoice = await lock_invoice(session, payment.invoice_id)
    if invoice is None:
        raise UnknownInvoice(f"payment {payment.payment_id} is for unknown invoice {payment.invoice_id}")
    if payment.currency.upper() != invoice.currency:
        raise ValueError(f"payment {payment.payment_id} is in {payment.currency}, invoice in {invoice.currency}")
    if payment.customer_id != invoice.customer_id:
        # POST /api/payments takes any invoice_id: one customer's money must not settle another's invoice.
        raise ValueError(f"payment {payment.payment_id} is by another customer than invoice {invoice.id}'s")
    status = InvoiceStatus(invoice.status)
    decision = apply_payment(status, balance_of(invoice), payment.amount)
    applied = (
        await session.execute(
            insert(InvoicePayment)
            .values(
                payment_id=payment.payment_id,
                invoice_id=invoice.id,
                amount=payment.amount,
                currency=invoice.currency,
                paid_at=at,
                refunded=decision.excess,
            )
            .on_conflict_do_nothing()
            .returning(InvoicePayment.payment_id)
        )
    ).first()
    if applied is None:
        return
    invoice.amount_paid += decision.applied
    if decision.applied:
        # Even a partial payment is what a later credit note refunds from (an invoice settled by a credit
        # note is marked paid with no payment of its own).
        invoice.payment_id = payment.payment_id
        invoice.amount_due = decision.balance_after.due
        if invoice.amount_due == 0:
            mark_paid(uow, terms, invoice, at, payment_id=payment.payment_id)  # announces what the invoice keeps
        else:
            uow.emit(
                InvoicePartiallyPaid(
                    **_facts(invoice), payment_id=payment.payment_id, amount_paid=invoice.amount_paid,
                    amount_due=invoice.amount_due,
                ),
                occurred_at=at,
            )
    if decision.excess:
        invoice.amount_paid, invoice.amount_refunded = decision.balance_after.paid, decision.balance_after.refunded
        # Paid twice, or a charge in flight while the invoice was credited or voided: the customer gets back
        # what it did not owe (the payment service refunds it).
        log.warning(
            "payment %s of %d %s to %s invoice %s: %d beyond what it owed is refunded", payment.payment_id,
            payment.amount, payment.currency, status.value, invoice.id, decision.excess,
        )
        uow.emit(
            InvoiceOverpaid(
                invoice_id=invoice.id, customer_id=invoice.customer_id, payment_id=payment.payment_id,
                amount=decision.excess, currency=invoice.currency, invoice_status=invoice.status,
            ),
            occurred_at=at,
        )


async def mark_uncollectible(uow: UnitOfWork, invoice_id: uuid.UUID, at: datetime) -> None:
    """Dunning gave up: an open invoice is written off (it can still be paid late)."""
    invoice = await lock_invoice(uow.session, invoice_id)
    if invoice is None:
        log.warning("dunning exhausted for unknown invoice %s: ignored", invoice_id)
        return
    if invoice.status != InvoiceStatus.OPEN.value:
        return  # paid meanwhile, voided, or already written off: nothing to change
    invoice.status = transition(invoice.status, InvoiceStatus.UNCOLLECTIBLE).value
    invoice.marked_uncollectible_at = at
    uow.emit(
        InvoiceUncollectible(**_facts(invoice), amount_due=invoice.amount_due),
        occurred_at=at,
    )


async def find_period_invoice(
    session: AsyncSession, subscription_id: uuid.UUID, period_start: datetime | None, before: datetime | None = None
) -> Invoice | None:
    """The (locked) invoice of a subscription period; without a period start, the latest one begun by `before`."""
    stmt = select(Invoice).where(Invoice.subscription_id == subscription_id, Invoice.kind == "period")
    if period_start is not None:
        stmt = stmt.where(Invoice.period_start == period_start)
    elif before is not None:
        stmt = stmt.where(Invoice.period_start <= before)
    stmt = stmt.order_by(Invoice.period_start.desc()).limit(1).with_for_update()
    return (await session.scalars(stmt.execution_options(populate_existing=True))).first()


async def period_invoices(
    session: AsyncSession, subscription_id: uuid.UUID, period_start: datetime | None, before: datetime | None = None
) -> list[Invoice]:
    """The (locked) invoices of a subscription period, newest first: its plan changes', then its own.

    Newest first, because a credit for the period lands there first: the latest plan's days are what a cancel
    credits, and an unpaid plan-change invoice is then lowered before paid money is refunded."""
    invoice = await find_period_invoice(session, subscription_id, period_start, before)
    if invoice is None:
        return []
    changes = await session.scalars(
        select(Invoice)
        .where(
            Invoice.subscription_id == subscription_id,
            Invoice.kind == "plan_change",
            Invoice.period_start == invoice.period_start,
        )
        .order_by(Invoice.effective_at.desc(), Invoice.id.desc())
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return [*changes, invoice]


def owing_first(invoices: list[Invoice]) -> list[Invoice]:
    """These invoices with those still owing first, in their order otherwise (a stable sort).

    For a plan change's credit for the old plan's unused days: it lowers what the customer still owes for the
    period before paid money is refunded. Such a credit released late, by the change invoice's payment, must not
    be refunded in cash while the period's own invoice (the old plan's) is unpaid."""
    owing = (InvoiceStatus.OPEN.value, InvoiceStatus.UNCOLLECTIBLE.value)
    return sorted(invoices, key=lambda i: not (i.status in owing and i.amount_due > 0))


async def latest_payment_method(session: AsyncSession, subscription_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(
        select(Invoice.payment_method_id)
        .where(Invoice.subscription_id == subscription_id, Invoice.payment_method_id.is_not(None))
        .order_by(Invoice.id.desc())
        .limit(1)
    )
