"""Event contracts, one class per routing key. Change only additively; new fields need defaults.

Money is always `amount` in integer minor units plus `currency` (ISO 4217). Times are UTC.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .events import Event, contract

# --- customer -------------------------------------------------------------------------------


@contract
class CustomerCreated(Event):
    type = "customer.created"
    customer_id: uuid.UUID
    email: str
    name: str = ""
    role: str = "user"


@contract
class CustomerUpdated(Event):
    type = "customer.updated"
    customer_id: uuid.UUID
    email: str
    name: str = ""
    role: str = "user"


# --- payment --------------------------------------------------------------------------------


@contract
class PaymentMethodAdded(Event):
    type = "payment_method.added"
    payment_method_id: uuid.UUID
    customer_id: uuid.UUID
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool = False


class _PaymentFact(Event):
    payment_id: uuid.UUID
    customer_id: uuid.UUID
    amount: int
    currency: str
    invoice_id: uuid.UUID | None = None
    subscription_id: uuid.UUID | None = None
    dunning_case_id: uuid.UUID | None = None
    attempt: int = 1
    payment_method_id: uuid.UUID | None = None

    def routing_key(self) -> str:
        # payment.<fact>.<invoice|one_off>.<dunning|direct>: the invoice service binds only payments of
        # invoices, dunning only its own retries (an invoice paid any other way reaches it as invoice.paid).
        paid_for = "invoice" if self.invoice_id is not None else "one_off"
        route = "dunning" if self.dunning_case_id is not None else "direct"
        return f"{self.type}.{paid_for}.{route}"


@contract
class PaymentSucceeded(_PaymentFact):
    type = "payment.succeeded"
    gateway_charge_id: str | None = None


@contract
class PaymentFailed(_PaymentFact):
    type = "payment.failed"
    failure_code: str
    decline_type: Literal["hard", "soft"] = "soft"
    failure_message: str = ""
    description: str | None = None  # a one-off payment's own, for the customer's emails about it
    # The invoice was already paid by another payment when this one failed (say a charge whose answer was lost,
    # found never made after the customer paid by hand): there is nothing to chase.
    invoice_already_paid: bool = False


@contract
class PaymentRefunded(Event):
    type = "payment.refunded"
    refund_id: uuid.UUID
    payment_id: uuid.UUID
    customer_id: uuid.UUID
    amount: int
    currency: str
    invoice_id: uuid.UUID | None = None
    credit_note_id: uuid.UUID | None = None
    # requested (an admin, through the API), credit_note, or overpayment (what an invoice did not owe)
    reason: Literal["requested", "credit_note", "overpayment"] = "requested"


# --- subscription ---------------------------------------------------------------------------


class ProrationLine(BaseModel):
    """A proration line: negative amount = credit for unused time, positive = charge."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    description: str
    amount: int
    currency: str
    unused_days: int | None = None
    days_in_period: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None


class _SubscriptionPeriodFact(Event):
    subscription_id: uuid.UUID
    customer_id: uuid.UUID
    plan_id: uuid.UUID
    plan_name: str
    amount: int
    currency: str
    interval: str
    interval_count: int = 1
    period_start: datetime
    period_end: datetime
    status: str
    payment_method_id: uuid.UUID | None = None
    # The id the period's invoice is made with, chosen by the subscription service so that it can name the invoice
    # at once (a subscription's period_invoice_id). None from a producer older than the field: any id then.
    invoice_id: uuid.UUID | None = None


@contract
class SubscriptionCreated(_SubscriptionPeriodFact):
    type = "subscription.created"
    trial_end: datetime | None = None


@contract
class SubscriptionRenewed(_SubscriptionPeriodFact):
    type = "subscription.renewed"
    period_index: int = 0


@contract
class SubscriptionCanceled(Event):
    type = "subscription.canceled"
    subscription_id: uuid.UUID
    customer_id: uuid.UUID
    canceled_at: datetime
    at_period_end: bool
    ends_at: datetime
    period_start: datetime | None = None
    period_end: datetime | None = None
    credit_amount: int = 0
    currency: str
    lines: list[ProrationLine] = []
    # True on a later, additional credit for an earlier immediate cancellation (the period's payment arrived
    # after the cancel): bill the credit, but the customer was already told of the cancellation.
    correction: bool = False


@contract
class SubscriptionPlanChanged(Event):
    type = "subscription.plan_changed"
    subscription_id: uuid.UUID
    customer_id: uuid.UUID
    old_plan_id: uuid.UUID
    new_plan_id: uuid.UUID
    new_plan_name: str = ""
    effective: Literal["now", "period_end"]
    effective_at: datetime
    period_start: datetime
    period_end: datetime
    currency: str
    lines: list[ProrationLine] = []
    # A credit the change owed but could not give while its period was unpaid, given once a payment came in
    # (lines: that one credit; effective_at: when it was earned). Not a change of plan.
    correction: bool = False
    # This change's own id: two changes at the same instant (an admin's repeated proration_date) are two
    # changes. None from producers older than this field, and on corrections.
    change_id: uuid.UUID | None = None


class _SubscriptionStatusFact(Event):
    subscription_id: uuid.UUID
    customer_id: uuid.UUID
    status: str
    at: datetime


@contract
class SubscriptionPaused(_SubscriptionStatusFact):
    type = "subscription.paused"
    for_outside_listeners = True  # no service here consumes it
    resumes_at: datetime | None = None


@contract
class SubscriptionResumed(_SubscriptionStatusFact):
    type = "subscription.resumed"
    for_outside_listeners = True  # no service here consumes it


@contract
class SubscriptionSuspended(_SubscriptionStatusFact):
    type = "subscription.suspended"
    service_ends_at: datetime | None = None
    # The unpaid invoice dunning gave up on, and what it was owed (None from producers older than these fields).
    invoice_id: uuid.UUID | None = None
    amount: int | None = None
    currency: str | None = None


@contract
class SubscriptionReactivated(_SubscriptionStatusFact):
    type = "subscription.reactivated"
    for_outside_listeners = True  # no service here consumes it


# --- invoice --------------------------------------------------------------------------------


class _InvoiceFact(Event):
    invoice_id: uuid.UUID
    number: str | None = None
    customer_id: uuid.UUID
    subscription_id: uuid.UUID | None = None
    currency: str
    total: int = 0
    # Signed links (they expire, by default after 7 days) that open the invoice page / PDF without a login.
    hosted_invoice_url: str | None = None
    invoice_pdf_url: str | None = None


@contract
class InvoiceFinalized(_InvoiceFact):
    type = "invoice.finalized"
    amount_due: int
    due_at: datetime
    payment_method_id: uuid.UUID | None = None


@contract
class InvoicePaid(_InvoiceFact):
    type = "invoice.paid"
    amount_paid: int
    paid_at: datetime
    payment_id: uuid.UUID | None = None
    # The subscription period the invoice bills (period_start of the subscription.created/renewed or
    # plan_changed event it came from): lets the subscription service know which period was paid.
    period_start: datetime | None = None


@contract
class InvoicePartiallyPaid(_InvoiceFact):
    """A payment settled part of an open invoice: dunning retries it for what is still due, not for its first
    charge's amount."""

    type = "invoice.partially_paid"
    payment_id: uuid.UUID
    amount_paid: int  # all the invoice has kept so far
    amount_due: int


@contract
class InvoiceVoided(_InvoiceFact):
    type = "invoice.voided"


@contract
class InvoiceUncollectible(_InvoiceFact):
    type = "invoice.uncollectible"
    for_outside_listeners = True  # no service here consumes it
    amount_due: int = 0


class RefundShare(BaseModel):
    """How much of a refund comes back from one payment."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    payment_id: uuid.UUID
    amount: int


@contract
class CreditNoteIssued(Event):
    type = "credit_note.issued"
    credit_note_id: uuid.UUID
    number: str
    invoice_id: uuid.UUID
    customer_id: uuid.UUID
    subscription_id: uuid.UUID | None = None
    amount: int
    currency: str
    reason: str = ""
    refund_due: bool = False
    refund_amount: int = 0
    payment_id: uuid.UUID | None = None
    # What the invoice still asks for after this note (None from producers older than this field): dunning
    # retries an unpaid invoice for this much, not for what its first charge asked.
    amount_due: int | None = None
    # Which payments refund_amount comes back from, newest first (an invoice paid in parts refunds from
    # several). Empty from producers older than this field: then all of it from payment_id.
    refunds: list[RefundShare] = []


@contract
class InvoiceOverpaid(Event):
    """Money came in beyond what the invoice still owed (paid twice, paid after a void or a credit): `amount` of
    payment `payment_id` goes back to the customer."""

    type = "invoice.overpaid"
    invoice_id: uuid.UUID
    customer_id: uuid.UUID
    payment_id: uuid.UUID
    amount: int
    currency: str
    invoice_status: str


# --- dunning --------------------------------------------------------------------------------


class _DunningFact(Event):
    case_id: uuid.UUID
    customer_id: uuid.UUID
    invoice_id: uuid.UUID | None = None
    payment_id: uuid.UUID | None = None
    subscription_id: uuid.UUID | None = None
    amount: int
    currency: str
    description: str | None = None  # what a one-off payment was for (its payment's description)


@contract
class DunningRetryScheduled(_DunningFact):
    type = "dunning.retry_scheduled"
    failures: int
    next_retry_at: datetime | None = None
    waiting_for_new_payment_method: bool = False
    # While waiting for a new payment method (a hard decline): when the case gives up if none is added.
    wait_until: datetime | None = None
    # The retry at next_retry_at is the last: dunning.final_notice goes with this event and says it all.
    final: bool = False


@contract
class DunningFinalNotice(_DunningFact):
    type = "dunning.final_notice"
    retry_at: datetime


@contract
class DunningRetryDue(_DunningFact):
    type = "dunning.retry_due"
    attempt: int
    payment_method_id: uuid.UUID | None = None


@contract
class DunningExhausted(_DunningFact):
    type = "dunning.exhausted"
    failures: int


@contract
class DunningRecovered(_DunningFact):
    type = "dunning.recovered"
    recovered_by_payment_id: uuid.UUID | None = None


# --- notifier -------------------------------------------------------------------------------


@contract
class NotificationSent(Event):
    type = "notification.sent"
    for_outside_listeners = True  # no service here consumes it
    notification_id: uuid.UUID
    customer_id: uuid.UUID | None = None
    template: str
    source_event_id: uuid.UUID
    recipient: str
