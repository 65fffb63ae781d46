"""Each customer-facing event becomes its email, to the projected address, with the right subject and amounts."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from billing_shared.contracts import (
    CreditNoteIssued,
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
from billing_shared.events import Event
from billing_shared.testing import EventBus
from tests.fakes import PDF_BYTES, FakeInvoiceApi, SmtpSink
from tests.support import (
    T0,
    days,
    html_of,
    mails_to,
    new_customer,
    text_of,
    wait_for_mail,
    wait_for_announcement,
    wait_until_handled,
)

INVOICE_ID = uuid.UUID("0190f7a2-0000-7000-8000-00000000a001")


def invoice_finalized(customer_id: uuid.UUID, **overrides: Any) -> InvoiceFinalized:
    fields = dict(
        invoice_id=uuid.uuid4(), number="INV-2027-0042", customer_id=customer_id, currency="USD",
        total=4999, amount_due=4999, due_at=T0 + days(14),
    )
    return InvoiceFinalized(**(fields | overrides))


def one_off_final_notice(customer_id: uuid.UUID) -> DunningFinalNotice:
    return DunningFinalNotice(
        case_id=uuid.uuid4(), customer_id=customer_id, payment_id=uuid.uuid4(), amount=1000, currency="EUR",
        retry_at=T0 + days(9),
    )


def one_off_exhausted(customer_id: uuid.UUID) -> DunningExhausted:
    return DunningExhausted(
        case_id=uuid.uuid4(), customer_id=customer_id, payment_id=uuid.uuid4(), amount=1000, currency="EUR", failures=4
    )


CASES: dict[str, tuple[Callable[[uuid.UUID], Event], str, list[str]]] = {
    "invoice_finalized": (
        lambda c: invoice_finalized(c, invoice_id=INVOICE_ID),
        "Invoice INV-2027-0042 for $49.99 is due March 15, 2027",
        ["Total: $49.99", f"https://billing.example.com/invoices/{INVOICE_ID}"],
    ),
    "invoice_paid": (
        lambda c: InvoicePaid(
            invoice_id=uuid.uuid4(), number="INV-2027-0042", customer_id=c, currency="USD",
            total=4999, amount_paid=4999, paid_at=T0,
        ),
        "Receipt for invoice INV-2027-0042",
        ["Amount paid: $49.99", "Paid on: March 1, 2027"],
    ),
    "payment_failed": (
        lambda c: DunningRetryScheduled(
            case_id=uuid.uuid4(), customer_id=c, amount=1000, currency="EUR", failures=1, next_retry_at=T0 + days(2)
        ),
        "Your payment of €10.00 failed",
        ["We will try again on March 3, 2027", "update your card"],
    ),
    "payment_failed_hard_decline": (
        lambda c: DunningRetryScheduled(
            case_id=uuid.uuid4(), customer_id=c, amount=1000, currency="EUR", failures=1,
            next_retry_at=None, waiting_for_new_payment_method=True,
        ),
        "Your payment of €10.00 failed",
        ["will not try it again", "add a new card"],
    ),
    "payment_recovered": (
        lambda c: DunningRecovered(
            case_id=uuid.uuid4(), customer_id=c, payment_id=uuid.uuid4(), amount=1000, currency="EUR",
            recovered_by_payment_id=uuid.uuid4(),
        ),
        "Your payment of €10.00 went through",
        ["collected your payment of €10.00"],
    ),
    "payment_refunded": (
        lambda c: PaymentRefunded(
            refund_id=uuid.uuid4(), payment_id=uuid.uuid4(), customer_id=c, amount=1500, currency="USD"
        ),
        "Refund of $15.00",
        ["We have refunded $15.00 to your card"],
    ),
    "final_notice": (
        lambda c: DunningFinalNotice(
            case_id=uuid.uuid4(), customer_id=c, subscription_id=uuid.uuid4(), amount=1000, currency="EUR",
            retry_at=T0 + days(9),
        ),
        "Final notice: last payment attempt on March 10, 2027",
        ["€10.00", "subscription will be suspended"],
    ),
    "final_notice_one_off": (
        one_off_final_notice,
        "Final notice: last payment attempt on March 10, 2027",
        ["payment of €10.00", "if it fails, we will not try this payment again"],
    ),
    "subscription_suspended": (
        lambda c: SubscriptionSuspended(
            subscription_id=uuid.uuid4(), customer_id=c, status="suspended", at=T0, service_ends_at=T0,
            invoice_id=uuid.uuid4(), amount=1000, currency="EUR",
        ),
        "Your subscription has been suspended",
        ["payment of €10.00", "pay the outstanding invoice"],
    ),
    "payment_uncollected": (
        one_off_exhausted,
        "Your payment of €10.00 could not be collected",
        ["could not collect your payment of €10.00, even after retrying it"],
    ),
    "subscription_canceled": (
        lambda c: SubscriptionCanceled(
            subscription_id=uuid.uuid4(), customer_id=c, canceled_at=T0, at_period_end=False, ends_at=T0,
            credit_amount=1234, currency="USD",
        ),
        "Your subscription has been canceled",
        ["Credit for the unused time: $12.34"],
    ),
    "credit_note_issued": (
        lambda c: CreditNoteIssued(
            credit_note_id=uuid.uuid4(), number="CN-2027-0007", invoice_id=uuid.uuid4(), customer_id=c,
            amount=1234, currency="USD", refund_due=True, refund_amount=1234,
        ),
        "Credit note CN-2027-0007 for $12.34",
        ["A refund of $12.34 is on its way"],
    ),
}


async def test_a_new_customer_gets_a_welcome_email(bus: EventBus, mail: SmtpSink) -> None:
    _, email = await new_customer(bus, mail, name="Grace Hopper")

    [welcome] = mails_to(mail, email)
    assert welcome["Subject"] == "Welcome, Grace Hopper"
    assert welcome["From"] == "billing@example.com"
    assert "Welcome aboard" in text_of(welcome)


@pytest.mark.parametrize("case", sorted(CASES))
async def test_event_arrives_as_its_email_with_recipient_subject_and_amounts(
    case: str, bus: EventBus, mail: SmtpSink
) -> None:
    make_event, subject, phrases = CASES[case]
    customer_id, email = await new_customer(bus, mail)

    envelope = await bus.publish(make_event(customer_id))

    _, message = await wait_for_mail(mail, email, count=2)
    assert message["Subject"] == subject
    assert message["To"] == email
    assert message["Message-ID"].strip().startswith(f"<{envelope.event_id}.")
    assert "Hello Ada Lovelace," in text_of(message)
    for phrase in phrases:
        assert phrase in text_of(message)
    assert message.get_body(("html",)) is not None


async def test_each_email_is_announced_as_notification_sent(bus: EventBus, mail: SmtpSink) -> None:
    customer_id, email = await new_customer(bus, mail)

    envelope = await bus.publish(CASES["invoice_paid"][0](customer_id))

    await wait_for_mail(mail, email, count=2)
    [announced] = await wait_for_announcement(bus, envelope.event_id)
    assert announced.payload["template"] == "invoice_paid"
    assert announced.payload["recipient"] == email
    assert announced.payload["customer_id"] == str(customer_id)
    assert announced.producer == "notifier"


class TestInvoicePdf:
    async def test_invoice_email_attaches_the_pdf_the_invoice_service_renders(
        self, bus: EventBus, mail: SmtpSink, invoice_api: FakeInvoiceApi
    ) -> None:
        customer_id, email = await new_customer(bus, mail)
        first, second = uuid.uuid4(), uuid.uuid4()
        invoice_api.pdf_invoice_ids.update({str(first), str(second)})

        await bus.publish(invoice_finalized(customer_id, invoice_id=first, number="INV-2027-0100"))
        await bus.publish(invoice_finalized(customer_id, invoice_id=second, number="INV-2027-0101"))

        _, *invoices = await wait_for_mail(mail, email, count=3)
        attachments = {part.get_filename(): part.get_content() for m in invoices for part in m.iter_attachments()}
        assert attachments == {"invoice-INV-2027-0100.pdf": PDF_BYTES, "invoice-INV-2027-0101.pdf": PDF_BYTES}
        assert all(m.get_content_type() == "multipart/mixed" for m in invoices)
        assert invoice_api.token_exchanges == 1  # the access token is cached, not fetched per email

    async def test_pdf_fetches_one_after_another_reuse_one_kept_alive_connection(
        self, bus: EventBus, mail: SmtpSink, invoice_api: FakeInvoiceApi
    ) -> None:
        customer_id, email = await new_customer(bus, mail)
        first, second = uuid.uuid4(), uuid.uuid4()
        invoice_api.pdf_invoice_ids.update({str(first), str(second)})

        await bus.publish(invoice_finalized(customer_id, invoice_id=first))
        await wait_for_mail(mail, email, count=2)
        await bus.publish(invoice_finalized(customer_id, invoice_id=second))
        await wait_for_mail(mail, email, count=3)

        # One pooled client for the app's lifetime, not a new client (and TLS context) per email.
        assert invoice_api.pdf_connections[str(first)] == invoice_api.pdf_connections[str(second)]

    async def test_invoice_email_without_a_pdf_is_sent_with_the_link_only(
        self, bus: EventBus, mail: SmtpSink, invoice_api: FakeInvoiceApi
    ) -> None:
        customer_id, email = await new_customer(bus, mail)
        missing = uuid.uuid4()  # the invoice service answers 404 for its PDF

        await bus.publish(invoice_finalized(customer_id, invoice_id=missing))

        _, invoice = await wait_for_mail(mail, email, count=2)
        assert list(invoice.iter_attachments()) == []
        assert f'href="https://billing.example.com/invoices/{missing}"' in html_of(invoice)


async def test_zero_amount_invoices_are_not_emailed(bus: EventBus, mail: SmtpSink, app: Any) -> None:
    customer_id, email = await new_customer(bus, mail)

    finalized = await bus.publish(invoice_finalized(customer_id, total=0, amount_due=0))
    paid = await bus.publish(
        InvoicePaid(invoice_id=uuid.uuid4(), customer_id=customer_id, currency="USD", amount_paid=0, paid_at=T0)
    )

    await wait_until_handled(app, finalized.event_id, paid.event_id)
    assert len(mails_to(mail, email)) == 1  # the welcome email only


async def test_a_cancellation_correction_sends_only_the_credit_note_email(
    bus: EventBus, mail: SmtpSink, app: Any
) -> None:
    """A late payment's extra credit for an earlier cancel: the customer hears of the refund, not a second cancel."""
    customer_id, email = await new_customer(bus, mail)

    correction = await bus.publish(
        SubscriptionCanceled(
            subscription_id=uuid.uuid4(), customer_id=customer_id, canceled_at=T0, at_period_end=False, ends_at=T0,
            credit_amount=2000, currency="USD", correction=True,
        )
    )
    await wait_until_handled(app, correction.event_id)
    await bus.publish(CASES["credit_note_issued"][0](customer_id))

    _, credit_note = await wait_for_mail(mail, email, count=2)
    assert credit_note["Subject"].startswith("Credit note CN-2027-0007")
    assert not [m for m in mails_to(mail, email) if "canceled" in m["Subject"]]


@pytest.mark.parametrize(
    ("make_event", "template"),
    [(one_off_final_notice, "final_notice"), (one_off_exhausted, "payment_uncollected")],
    ids=["final_notice", "exhausted"],
)
async def test_a_failed_one_off_payment_is_never_said_to_suspend_a_subscription_or_leave_an_invoice(
    make_event: Callable[[uuid.UUID], Event], template: str, bus: EventBus, mail: SmtpSink
) -> None:
    """The subscription service suspends nothing for a case without a subscription, and there is no invoice."""
    customer_id, email = await new_customer(bus, mail)

    await bus.publish(make_event(customer_id))

    _, message = await wait_for_mail(mail, email, count=2)
    assert f".{template}@" in message["Message-ID"]
    for part in (message["Subject"], text_of(message), html_of(message)):
        assert "suspend" not in part.lower() and "invoice" not in part.lower()
        assert "subscription" not in part.lower() and "reactivate" not in part.lower()
    assert "€10.00" in text_of(message) and "€10.00" in html_of(message)
