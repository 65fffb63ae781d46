"""Which email an event becomes: the template, the customer to write to, and the template variables.

Pure functions over the event contracts; the customer's name and address come from the projection later.
Zero-amount invoices are not emailed (nothing is due and nothing was charged): `plan_email` returns None.
Nor is a cancellation correction (a late payment's extra credit): the customer heard of the cancellation
already, and the credit_note.issued email tells them of the refund. A recovered dunning case is emailed
only for a one-off payment: an invoice's recovery is told by its receipt (invoice.paid). A refund is
emailed when it is done, unless it refunds a credit note, whose own email told of it. Dunning speaks of a
suspension only when its case names a subscription: the subscription service suspends nothing else, so a
failed one-off payment is just no longer retried, and its emails say so; a subscription's suspension is
told by subscription.suspended, which the subscription service announces only when it does suspend.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from billing_shared.contracts import (
    CreditNoteIssued,
    CustomerCreated,
    DunningExhausted,
    DunningFinalNotice,
    DunningRecovered,
    DunningRetryScheduled,
    InvoiceFinalized,
    InvoicePaid,
    PaymentRefunded,
    SubscriptionCanceled,
    SubscriptionSuspended,
)
from billing_shared.events import Envelope, Event


@dataclass(frozen=True)
class EmailPlan:
    template: str
    customer_id: uuid.UUID
    context: dict[str, Any] = field(default_factory=dict)
    # Set when the email should carry this invoice's PDF (if the invoice service can give it), with the signed
    # link that fetches it without a credential when the event carries one.
    attach_invoice_id: uuid.UUID | None = None
    attach_pdf_url: str | None = None
    attachment_name: str = ""


def invoice_url(public_base_url: str, invoice_id: uuid.UUID) -> str:
    return f"{public_base_url.rstrip('/')}/invoices/{invoice_id}"


def _invoice_label(number: str | None, invoice_id: uuid.UUID) -> str:
    # A finalized invoice should carry its number; fall back to a short id rather than print "None".
    return number or f"#{str(invoice_id)[:8]}"


def _welcome(e: CustomerCreated, base_url: str) -> EmailPlan | None:
    # An admin is staff, not a customer to welcome: the bootstrap admin's admin@billing.local would only bounce.
    if e.role == "admin":
        return None
    return EmailPlan("welcome", e.customer_id)


def _invoice_finalized(e: InvoiceFinalized, base_url: str) -> EmailPlan | None:
    if e.amount_due <= 0:
        return None
    number = _invoice_label(e.number, e.invoice_id)
    return EmailPlan(
        "invoice_finalized",
        e.customer_id,
        {
            "invoice_number": number,
            "total": e.total or e.amount_due,
            "amount_due": e.amount_due,
            "currency": e.currency,
            "due_date": e.due_at,
            # The invoice service's signed link opens the page without a login; else the plain page address.
            "invoice_url": e.hosted_invoice_url or invoice_url(base_url, e.invoice_id),
        },
        attach_invoice_id=e.invoice_id,
        attach_pdf_url=e.invoice_pdf_url,
        attachment_name=f"invoice-{number.lstrip('#')}.pdf",
    )


def _invoice_paid(e: InvoicePaid, base_url: str) -> EmailPlan | None:
    if e.amount_paid <= 0:
        return None
    return EmailPlan(
        "invoice_paid",
        e.customer_id,
        {
            "invoice_number": _invoice_label(e.number, e.invoice_id),
            "amount_paid": e.amount_paid,
            "currency": e.currency,
            "paid_at": e.paid_at,
        },
    )


def _debt(e: DunningRetryScheduled | DunningRecovered | DunningFinalNotice | DunningExhausted) -> dict[str, Any]:
    """What a dunning email says is owed: the amount, and for a one-off payment what it was for."""
    return {"amount": e.amount, "currency": e.currency, "description": e.description}


def _payment_failed(e: DunningRetryScheduled, base_url: str) -> EmailPlan | None:
    if e.final:
        return None  # the final notice, announced with it, tells the same failure and names the last attempt
    # A hard decline schedules no retry: the email then asks for a new card by the date dunning gives up.
    waiting = e.waiting_for_new_payment_method
    return EmailPlan(
        "payment_failed",
        e.customer_id,
        {**_debt(e), "next_retry_at": None if waiting else e.next_retry_at,
         "add_card_by": e.wait_until if waiting else None},
    )


def _recovered(e: DunningRecovered, base_url: str) -> EmailPlan | None:
    # The customer was told the payment failed and when it would be tried again: this closes that story.
    if e.invoice_id is not None:
        return None
    return EmailPlan("payment_recovered", e.customer_id, _debt(e))


def _refunded(e: PaymentRefunded, base_url: str) -> EmailPlan | None:
    if e.credit_note_id is not None:
        return None
    return EmailPlan(
        "payment_refunded",
        e.customer_id,
        {"amount": e.amount, "currency": e.currency, "overpayment": e.reason == "overpayment"},
    )


def _final_notice(e: DunningFinalNotice, base_url: str) -> EmailPlan:
    return EmailPlan(
        "final_notice",
        e.customer_id,
        {
            **_debt(e),
            "final_retry_at": e.retry_at,
            # Without a subscription a last failure suspends nothing: the notice must not threaten it.
            "suspends_subscription": e.subscription_id is not None,
        },
    )


def _exhausted(e: DunningExhausted, base_url: str) -> EmailPlan | None:
    # A subscription's case: its subscription.suspended tells the customer, if the subscription service does
    # suspend it (not when a payment or a void came first, nor a subscription already canceled or suspended).
    if e.subscription_id is not None:
        return None
    # A one-off payment: its own email, not a variant of the suspension: nothing was suspended or can be
    # reactivated, so no sentence of that email holds.
    return EmailPlan("payment_uncollected", e.customer_id, _debt(e))


def _suspended(e: SubscriptionSuspended, base_url: str) -> EmailPlan:
    return EmailPlan(
        "subscription_suspended",
        e.customer_id,
        {
            # None from a subscription service older than these fields: the email then names no amount.
            "amount": e.amount,
            "currency": e.currency,
            # Service continues to the end of a period already paid.
            "service_ends_at": e.service_ends_at if e.service_ends_at and e.service_ends_at > e.at else None,
        },
    )


def _canceled(e: SubscriptionCanceled, base_url: str) -> EmailPlan | None:
    if e.correction:
        return None
    return EmailPlan(
        "subscription_canceled",
        e.customer_id,
        {
            # A credit, not a refund: the invoice service may take it off an invoice still open (its credit note
            # says what goes back to the card).
            "credit_amount": max(e.credit_amount, 0),
            "currency": e.currency,
            "at_period_end": e.at_period_end,
            "ends_at": e.ends_at,
        },
    )


def _credit_note(e: CreditNoteIssued, base_url: str) -> EmailPlan:
    refund_amount = e.refund_amount or (e.amount if e.refund_due else 0)
    return EmailPlan(
        "credit_note_issued",
        e.customer_id,
        {
            "credit_note_number": e.number,
            "amount": e.amount,
            "currency": e.currency,
            "refund_pending": e.refund_due and refund_amount > 0,
            "refund_amount": refund_amount,
        },
    )


_PLANNERS: dict[type[Event], Callable[[Any, str], EmailPlan | None]] = {
    CustomerCreated: _welcome,
    InvoiceFinalized: _invoice_finalized,
    InvoicePaid: _invoice_paid,
    DunningRetryScheduled: _payment_failed,
    DunningRecovered: _recovered,
    DunningFinalNotice: _final_notice,
    DunningExhausted: _exhausted,
    SubscriptionSuspended: _suspended,
    SubscriptionCanceled: _canceled,
    CreditNoteIssued: _credit_note,
    PaymentRefunded: _refunded,
}

EMAILED_EVENTS: dict[str, type[Event]] = {cls.type: cls for cls in _PLANNERS}


def plan_email(envelope: Envelope, public_base_url: str) -> EmailPlan | None:
    """The email this event asks for, or None when it asks for none. Unknown types are a KeyError."""
    contract = EMAILED_EVENTS[envelope.type]
    return _PLANNERS[contract](envelope.payload_as(contract), public_base_url)


def greeting_name(name: str, email: str) -> str:
    """The name to greet: the customer's name, else the local part of the address."""
    return name.strip() or email.partition("@")[0]


def message_id(event_id: uuid.UUID, template: str, sender: str) -> str:
    """A Message-ID fixed by the event, so a resend after a crash is recognisably the same email."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<{event_id}.{template}@{domain}>"
