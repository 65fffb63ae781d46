"""The routing keys the subscription service consumes, and their handlers."""

from __future__ import annotations

from billing_shared.consumer import Handler, batchable

from .dunning import handle_dunning_exhausted, handle_dunning_retry_scheduled
from .invoices import handle_invoice_paid, handle_invoice_voided

# Every effect of these is in the unit of work: under load the consumer applies several in one transaction.
HANDLERS: dict[str, Handler] = {
    "invoice.paid": batchable(handle_invoice_paid),
    "invoice.voided": batchable(handle_invoice_voided),
    "dunning.retry_scheduled": batchable(handle_dunning_retry_scheduled),
    "dunning.exhausted": batchable(handle_dunning_exhausted),
}
