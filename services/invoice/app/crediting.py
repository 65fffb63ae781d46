"""Credit notes: a numbered (CN- series, gapless) credit against one invoice, issued once per fact.

On a paid invoice the credit is refunded (credit_note.issued with refund_due, up to what was paid and not
yet refunded, from the invoice's payments: `refunds`, see _take_refund); on an unpaid one it lowers the amount
due, and an invoice left with nothing due is settled: paid if money was received, void if it was credited
in full (see domain.credits). A credit for a whole subscription period is spread over the period's invoices
(`credit_invoices`): after a plan change, part of what was paid for the period is on its invoice.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import false, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_shared.contracts import CreditNoteIssued, RefundShare
from billing_shared.db import UnitOfWork

from .db.models import CreditNote, Invoice, InvoicePayment
from .db.numbering import next_number
from .domain.credits import NothingToCredit, allocate_refund, apply_credit
from .domain.states import InvoiceStatus
from .invoicing import Terms, balance_of, mark_paid, mark_void

log = logging.getLogger(__name__)


async def issue_credit_note(
    uow: UnitOfWork,
    terms: Terms,
    invoice: Invoice,
    *,
    amount: int,
    currency: str,
    reason: str,
    source_key: str,
    at: datetime,
) -> CreditNote | None:
    """Credit `amount` on a locked invoice; None if this fact was credited before or nothing can be."""
    session = uow.session
    if await session.scalar(select(CreditNote.id).where(CreditNote.source_key == source_key)):
        return None
    if currency.upper() != invoice.currency:
        raise ValueError(f"a {currency} credit cannot apply to invoice {invoice.id} in {invoice.currency}")
    try:
        decision = apply_credit(invoice.status, balance_of(invoice), amount)
    except NothingToCredit as exc:
        log.warning("no credit note for %s on invoice %s: %s", source_key, invoice.id, exc)
        return None
    after = decision.balance_after
    invoice.amount_credited, invoice.amount_refunded = after.credited, after.refunded
    invoice.amount_due = after.due
    refunds = await _take_refund(session, invoice, decision.refund_amount) if decision.refund_due else []
    note = CreditNote(
        invoice_id=invoice.id,
        customer_id=invoice.customer_id,
        subscription_id=invoice.subscription_id,
        amount=decision.amount,
        currency=invoice.currency,
        reason=reason,
        refund_due=decision.refund_due,
        refund_amount=decision.refund_amount,
        payment_id=refunds[0].payment_id if refunds else None,
        refunds=[share.model_dump(mode="json") for share in refunds],
        source_key=source_key,
        issued_at=at,
    )
    if decision.status_after != InvoiceStatus(invoice.status):
        if decision.status_after is InvoiceStatus.PAID:
            mark_paid(uow, terms, invoice, at, payment_id=None)
        else:
            mark_void(uow, invoice, at)
    # Last before the commit: the CN series stays locked until the transaction ends.
    note.number = await next_number(session, terms.credit_note_prefix)
    session.add(note)
    await session.flush()
    uow.emit(
        CreditNoteIssued(
            credit_note_id=note.id,
            number=note.number,
            invoice_id=invoice.id,
            customer_id=invoice.customer_id,
            subscription_id=invoice.subscription_id,
            amount=note.amount,
            currency=note.currency,
            reason=reason,
            refund_due=note.refund_due,
            refund_amount=note.refund_amount,
            payment_id=note.payment_id,
            amount_due=invoice.amount_due,
            refunds=refunds,
        ),
        occurred_at=at,
    )
    return note


async def _take_refund(session: AsyncSession, invoice: Invoice, amount: int) -> list[RefundShare]:
    """Split a refund of `amount` over the invoice's payments, and count it on each: first the payment that
    settled the invoice, then the others newest first.

    The payment that settled the invoice (invoice.payment_id) comes first: it is the newest the invoice kept
    money of. A payment applied after the invoice was settled is an overpayment, refunded in full since
    invoice.overpaid; one applied before migration 0002 has refunded = 0 here although a person may have
    refunded it already, and a credit taken from it would then come back to nobody."""
    settling = InvoicePayment.payment_id == invoice.payment_id if invoice.payment_id is not None else false()
    payments = (
        await session.scalars(
            select(InvoicePayment)
            .where(InvoicePayment.invoice_id == invoice.id, InvoicePayment.refunded < InvoicePayment.amount)
            .order_by(settling.desc(), InvoicePayment.paid_at.desc(), InvoicePayment.payment_id.desc())
            .with_for_update()
        )
    ).all()
    shares = allocate_refund(amount, [(payment, payment.amount - payment.refunded) for payment in payments])
    for payment, share in shares:
        payment.refunded += share
    if sum(share for _, share in shares) < amount:
        # Only if the invoice's books disagree with its payments: the customer is owed the rest.
        log.error("invoice %s has %d to refund but its payments hold less: refunding what they hold", invoice.id,
                  amount)
    return [RefundShare(payment_id=payment.payment_id, amount=share) for payment, share in shares]


async def credit_invoices(
    uow: UnitOfWork,
    terms: Terms,
    invoices: list[Invoice],
    *,
    amount: int,
    currency: str,
    reason: str,
    source_key: str,
    at: datetime,
) -> list[CreditNote]:
    """Credit `amount` over these locked invoices in turn, each up to what it can still take: one note per
    invoice credited. The first note issued carries `source_key` and later ones `source_key:2`, `:3`…, so a
    replayed fact finds the first and credits nothing again."""
    notes: list[CreditNote] = []
    for invoice in invoices:
        left = amount - sum(note.amount for note in notes)
        if left <= 0:
            break
        key = f"{source_key}:{len(notes) + 1}" if notes else source_key
        note = await issue_credit_note(
            uow, terms, invoice, amount=left, currency=currency, reason=reason, source_key=key, at=at
        )
        if note is not None:
            notes.append(note)
    credited = sum(note.amount for note in notes)
    if notes and credited < amount:
        log.warning("%s credited %d of %d %s: the period's invoices could take no more", source_key, credited, amount,
                    currency)
    return notes
