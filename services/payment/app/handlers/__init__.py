"""Handlers of consumed events: charge finalized invoices, retry for dunning, refund what invoices say is owed,
charge no voided invoice."""

from __future__ import annotations

from functools import partial

from billing_shared.consumer import Handler

from ..context import PaymentContext
from .credit_note_issued import handle_credit_note_issued
from .dunning_retry_due import handle_dunning_retry_due
from .invoice_finalized import handle_invoice_finalized
from .invoice_overpaid import handle_invoice_overpaid
from .invoice_voided import handle_invoice_voided


def build_handlers(ctx: PaymentContext) -> dict[str, Handler]:
    return {
        "invoice.finalized": partial(handle_invoice_finalized, ctx=ctx),
        "dunning.retry_due": partial(handle_dunning_retry_due, ctx=ctx),
        "credit_note.issued": partial(handle_credit_note_issued, ctx=ctx),
        "invoice.overpaid": partial(handle_invoice_overpaid, ctx=ctx),
        "invoice.voided": handle_invoice_voided,
    }
