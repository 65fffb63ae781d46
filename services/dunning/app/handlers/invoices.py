"""An invoice paid another way ends its case as recovered; a voided invoice cancels it; a credit note or a partial
payment on an unpaid invoice lowers what its case retries for."""

from __future__ import annotations

import uuid

from billing_shared.clock import ensure_utc
from billing_shared.contracts import CreditNoteIssued, InvoicePaid, InvoicePartiallyPaid, InvoiceVoided
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from .. import operations
from ..db import repository
from ..db.models import DunningCase


async def handle_invoice_paid(envelope: Envelope, uow: UnitOfWork) -> None:
    paid = envelope.payload_as(InvoicePaid)
    case = await _invoice_case(uow, paid.invoice_id)
    if case is not None:
        await operations.recover(uow, case, ensure_utc(envelope.occurred_at), paid.payment_id)


async def handle_invoice_voided(envelope: Envelope, uow: UnitOfWork) -> None:
    voided = envelope.payload_as(InvoiceVoided)
    at = ensure_utc(envelope.occurred_at)
    # Remembered: the payment.failed of a charge under way when it was voided may come after this.
    await repository.remember_voided_invoice(uow.session, voided.invoice_id, at)
    case = await _invoice_case(uow, voided.invoice_id)
    if case is not None:
        operations.cancel(case, at)


async def handle_credit_note_issued(envelope: Envelope, uow: UnitOfWork) -> None:
    note = envelope.payload_as(CreditNoteIssued)
    if note.amount_due is None or note.amount_due <= 0:
        return  # nothing left due: the invoice's invoice.paid or invoice.voided closes the case
    case = await _invoice_case(uow, note.invoice_id)
    if case is not None:
        operations.reprice(case, note.amount_due)


async def handle_invoice_partially_paid(envelope: Envelope, uow: UnitOfWork) -> None:
    # A payment by hand (dunning hears only its own retries' payments): the next retry asks for the rest.
    partly = envelope.payload_as(InvoicePartiallyPaid)
    case = await _invoice_case(uow, partly.invoice_id)
    if case is not None:
        operations.reprice(case, partly.amount_due)


async def _invoice_case(uow: UnitOfWork, invoice_id: uuid.UUID) -> DunningCase | None:
    """The (locked) case of an unpaid invoice, if dunning opened one."""
    return await repository.lock_case_by_key(uow.session, repository.case_key(invoice_id, None))
