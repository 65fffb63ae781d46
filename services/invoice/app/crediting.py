"""Credit notes: a numbered (CN- series, gapless) credit against one invoice, issued once per fact.

On a paid invoice the credit is refunded (credit_note.issued with refund_due, up to what was paid and not
yet refunded, from the invoice's payment); on an unpaid one it lowers the amount due, and an invoice left
with nothing due is settled: paid if money was received, void if it was credited in full (see
domain.credits).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select

from billing_shared.contracts import CreditNoteIssued
from billing_shared.db import UnitOfWork

from .db.models import CreditNote, Invoice
from .db.numbering import next_number
from .domain.credits import NothingToCredit, apply_credit
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
    note = CreditNote(
        invoice_id=invoice.id,
        customer_id=invoice.customer_id,
        subscription_id=invoice.subscription_id,
        amount=decision.amount,
        currency=invoice.currency,
        reason=reason,
        refund_due=decision.refund_due,
        refund_amount=decision.refund_amount,
        payment_id=invoice.payment_id if decision.refund_due else None,
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
        ),
        occurred_at=at,
    )
    return note
