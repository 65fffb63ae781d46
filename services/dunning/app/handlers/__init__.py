"""What each consumed event does to dunning cases (the consumer commits and dedupes by event id)."""

from __future__ import annotations

from billing_shared.consumer import Handler

from ..settings import Settings
from . import invoices, payments


def make_handlers(settings: Settings) -> dict[str, Handler]:
    schedule = settings.retry_schedule
    return {
        "payment.failed": payments.payment_failed_handler(schedule),
        "payment.succeeded": payments.handle_payment_succeeded,
        "payment_method.added": payments.handle_payment_method_added,
        "invoice.paid": invoices.handle_invoice_paid,
        "invoice.voided": invoices.handle_invoice_voided,
    }
