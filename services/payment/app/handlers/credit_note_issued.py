"""credit_note.issued → what its invoice owes is lowered; a refund due is refunded from the payments it names,
once per payment and note."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert

from billing_shared.contracts import CreditNoteIssued, RefundShare
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..context import PaymentContext
from ..db.models import InvoiceCredit
from ..domain.payments import credit_note_refund_key
from ..service_layer.owed_refunds import OwedRefund, refund_owed


async def handle_credit_note_issued(envelope: Envelope, uow: UnitOfWork, *, ctx: PaymentContext) -> None:
    note = envelope.payload_as(CreditNoteIssued)
    # Every note lowers what its invoice owes: a payment of the rest pays it (a retry or a payment by hand of
    # more is then refused), refunded or not.
    await uow.session.execute(
        insert(InvoiceCredit)
        .values(credit_note_id=note.credit_note_id, invoice_id=note.invoice_id, amount=note.amount)
        .on_conflict_do_nothing(index_elements=[InvoiceCredit.credit_note_id])
    )
    if not note.refund_due or note.refund_amount <= 0:
        return
    shares = note.refunds
    if not shares and note.payment_id is not None:  # from an invoice service older than `refunds`
        shares = [RefundShare(payment_id=note.payment_id, amount=note.refund_amount)]
    owed = [
        OwedRefund(share.payment_id, share.amount, credit_note_refund_key(note.credit_note_id, index, share.payment_id))
        for index, share in enumerate(shares)
    ]
    await refund_owed(
        ctx, uow, owed, customer_id=note.customer_id, reason="credit_note", occurred_at=envelope.occurred_at,
        credit_note_id=note.credit_note_id,
    )
