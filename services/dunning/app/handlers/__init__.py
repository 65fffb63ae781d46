"""What each consumed event does to dunning cases (the consumer commits and dedupes by event id)."""

from __future__ import annotations

from billing_shared.consumer import Handler, batchable

from ..settings import Settings
from . import invoices, payments, subscriptions


# A successful payment matters here only as a retry of ours; an invoice paid any other way arrives as
# invoice.paid, and a one-off payment that never failed has no case.
BINDINGS = {"payment.succeeded": ["payment.succeeded.*.dunning"]}


def make_handlers(settings: Settings) -> dict[str, Handler]:
    schedule = settings.retry_schedule
    # Every effect of these is in the unit of work: under load the consumer applies several in one transaction.
    handlers: dict[str, Handler] = {
        "payment.failed": payments.payment_failed_handler(schedule),
        "payment.succeeded": payments.handle_payment_succeeded,
        "payment_method.added": payments.handle_payment_method_added,
        "invoice.paid": invoices.handle_invoice_paid,
        "invoice.voided": invoices.handle_invoice_voided,
        "invoice.partially_paid": invoices.handle_invoice_partially_paid,
        "credit_note.issued": invoices.handle_credit_note_issued,
        "subscription.canceled": subscriptions.handle_subscription_canceled,
    }
    return {event_type: batchable(handler) for event_type, handler in handlers.items()}
