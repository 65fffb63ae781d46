"""The routing keys the subscription service consumes, and their handlers."""

from __future__ import annotations

from billing_shared.consumer import Handler

from .dunning import handle_dunning_exhausted, handle_dunning_retry_scheduled
from .invoices import handle_invoice_paid

HANDLERS: dict[str, Handler] = {
    "invoice.paid": handle_invoice_paid,
    "dunning.retry_scheduled": handle_dunning_retry_scheduled,
    "dunning.exhausted": handle_dunning_exhausted,
}
