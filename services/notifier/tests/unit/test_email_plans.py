"""Which event becomes which email, with which variables (pure; no broker, no SMTP)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app.domain.emails import EMAILED_EVENTS, greeting_name, message_id, plan_email
from app.rendering import email_kinds, render_email
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

BASE = "https://billing.example.com/"
CUSTOMER = uuid.uuid4()
WHEN = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def envelope(event: Event) -> Envelope:
    return Envelope(type=event.type, producer="test", payload=event.model_dump(mode="json"))


EVENTS: dict[str, Event] = {
    "welcome": CustomerCreated(customer_id=CUSTOMER, email="ada@example.com", name="Ada"),
    "invoice_finalized": InvoiceFinalized(
        invoice_id=uuid.uuid4(), number="INV-1", customer_id=CUSTOMER, currency="USD", total=4999,
        amount_due=4999, due_at=WHEN,
    ),
    "invoice_paid": InvoicePaid(
        invoice_id=uuid.uuid4(), number="INV-1", customer_id=CUSTOMER, currency="USD", amount_paid=4999, paid_at=WHEN
    ),
    "payment_failed": DunningRetryScheduled(
        case_id=uuid.uuid4(), customer_id=CUSTOMER, amount=1000, currency="EUR", failures=1, next_retry_at=WHEN
    ),
    "final_notice": DunningFinalNotice(
        case_id=uuid.uuid4(), customer_id=CUSTOMER, subscription_id=uuid.uuid4(), amount=1000, currency="EUR",
        retry_at=WHEN,
    ),
    "payment_recovered": DunningRecovered(
        case_id=uuid.uuid4(), customer_id=CUSTOMER, payment_id=uuid.uuid4(), amount=1000, currency="EUR",
        recovered_by_payment_id=uuid.uuid4(),
    ),
    "payment_refunded": PaymentRefunded(
        refund_id=uuid.uuid4(), payment_id=uuid.uuid4(), customer_id=CUSTOMER, amount=1500, currency="USD"
    ),
    "subscription_suspended": SubscriptionSuspended(
        subscription_id=uuid.uuid4(), customer_id=CUSTOMER, status="suspended", at=WHEN, invoice_id=uuid.uuid4(),
        amount=1000, currency="EUR", service_ends_at=WHEN,
    ),
    "payment_uncollected": DunningExhausted(
        case_id=uuid.uuid4(), customer_id=CUSTOMER, payment_id=uuid.uuid4(), amount=1000, currency="EUR", failures=4
    ),
    "subscription_canceled": SubscriptionCanceled(
        subscription_id=uuid.uuid4(), customer_id=CUSTOMER, canceled_at=WHEN, at_period_end=False, ends_at=WHEN,
        credit_amount=1234, currency="USD",
    ),
    "credit_note_issued": CreditNoteIssued(
        credit_note_id=uuid.uuid4(), number="CN-1", invoice_id=uuid.uuid4(), customer_id=CUSTOMER, amount=1234,
        currency="USD", refund_due=True, refund_amount=1000,
    ),
}


def test_every_template_has_an_event_and_every_emailed_event_a_template() -> None:
    assert set(EVENTS) == email_kinds()
    assert {e.type for e in EVENTS.values()} == set(EMAILED_EVENTS)


@pytest.mark.parametrize("template", sorted(EVENTS))
def test_each_event_plans_its_template_for_its_customer_and_the_plan_renders(template: str) -> None:
    plan = plan_email(envelope(EVENTS[template]), BASE)

    assert plan is not None
    assert (plan.template, plan.customer_id) == (template, CUSTOMER)
    render_email(template, plan.context | {"customer_name": "Ada"})  # nothing the template needs is missing


def test_invoice_finalized_asks_for_its_pdf_and_links_the_invoice_page() -> None:
    event = EVENTS["invoice_finalized"]
    plan = plan_email(envelope(event), BASE)

    assert plan is not None and plan.attach_invoice_id == event.invoice_id  # type: ignore[attr-defined]
    assert plan.attachment_name == "invoice-INV-1.pdf"
    text = render_email(plan.template, plan.context | {"customer_name": "Ada"}).text
    assert f"https://billing.example.com/invoices/{event.invoice_id}" in text  # type: ignore[attr-defined]


def test_invoice_finalized_links_the_signed_hosted_page_when_the_invoice_service_gives_one() -> None:
    signed = "https://billing.example.com/invoices/abc?expires=1&signature=x"
    event = InvoiceFinalized(
        invoice_id=uuid.uuid4(), customer_id=CUSTOMER, currency="USD", amount_due=1, due_at=WHEN,
        hosted_invoice_url=signed,
    )

    plan = plan_email(envelope(event), BASE)

    assert plan is not None and plan.context["invoice_url"] == signed
    html = render_email(plan.template, plan.context | {"customer_name": "Ada"}).html
    assert 'href="https://billing.example.com/invoices/abc?expires=1&amp;signature=x"' in html


def test_an_invoice_without_a_number_is_named_by_its_short_id_rather_than_none() -> None:
    invoice_id = uuid.UUID("0190f7a2-1234-7000-8000-000000000001")
    event = InvoicePaid(invoice_id=invoice_id, customer_id=CUSTOMER, currency="USD", amount_paid=1, paid_at=WHEN)

    plan = plan_email(envelope(event), BASE)

    assert plan is not None and plan.context["invoice_number"] == "#0190f7a2"


@pytest.mark.parametrize(
    "event",
    [
        InvoiceFinalized(
            invoice_id=uuid.uuid4(), customer_id=CUSTOMER, currency="USD", amount_due=0, due_at=WHEN
        ),
        InvoicePaid(invoice_id=uuid.uuid4(), customer_id=CUSTOMER, currency="USD", amount_paid=0, paid_at=WHEN),
    ],
    ids=["finalized", "paid"],
)
def test_zero_amount_invoices_ask_for_no_email(event: Event) -> None:
    assert plan_email(envelope(event), BASE) is None


def test_an_admin_account_is_not_welcomed_like_a_customer() -> None:
    """The first `app.cli admin-key` creates admin@billing.local: a welcome there would go out through the real SMTP
    server and bounce."""
    admin = CustomerCreated(customer_id=CUSTOMER, email="admin@billing.local", name="Bootstrap admin", role="admin")

    assert plan_email(envelope(admin), BASE) is None


def test_a_recovered_invoice_asks_for_no_email_of_its_own_since_its_receipt_tells_it() -> None:
    event = DunningRecovered(
        case_id=uuid.uuid4(), customer_id=CUSTOMER, invoice_id=uuid.uuid4(), amount=1000, currency="EUR",
        recovered_by_payment_id=uuid.uuid4(),
    )

    assert plan_email(envelope(event), BASE) is None


def test_a_credit_note_refund_asks_for_no_email_of_its_own_since_the_credit_note_email_tells_it() -> None:
    event = PaymentRefunded(
        refund_id=uuid.uuid4(), payment_id=uuid.uuid4(), customer_id=CUSTOMER, amount=1500, currency="USD",
        invoice_id=uuid.uuid4(), credit_note_id=uuid.uuid4(),
    )

    assert plan_email(envelope(event), BASE) is None


def test_a_refund_of_an_overpayment_says_so_and_one_an_admin_asked_for_does_not() -> None:
    asked = plan_email(envelope(EVENTS["payment_refunded"]), BASE)
    overpaid = plan_email(envelope(EVENTS["payment_refunded"].model_copy(update={"reason": "overpayment"})), BASE)

    assert asked is not None and overpaid is not None
    assert (asked.context["overpayment"], overpaid.context["overpayment"]) == (False, True)


def test_a_hard_decline_has_no_retry_date_even_if_the_event_carries_one() -> None:
    event = DunningRetryScheduled(
        case_id=uuid.uuid4(), customer_id=CUSTOMER, amount=1000, currency="EUR", failures=1,
        next_retry_at=WHEN, waiting_for_new_payment_method=True,
    )

    plan = plan_email(envelope(event), BASE)

    assert plan is not None and plan.context["next_retry_at"] is None


def test_a_hard_decline_asks_for_a_new_card_by_the_day_dunning_gives_up() -> None:
    event = DunningRetryScheduled(
        case_id=uuid.uuid4(), customer_id=CUSTOMER, amount=1000, currency="EUR", failures=1,
        waiting_for_new_payment_method=True, wait_until=WHEN,
    )

    plan = plan_email(envelope(event), BASE)

    assert plan is not None and (plan.context["next_retry_at"], plan.context["add_card_by"]) == (None, WHEN)


def test_the_last_retrys_schedule_sends_no_payment_failed_email_beside_the_final_notice() -> None:
    event = EVENTS["payment_failed"].model_copy(update={"final": True})

    assert plan_email(envelope(event), BASE) is None
    assert plan_email(envelope(EVENTS["payment_failed"]), BASE) is not None


def test_a_one_off_payments_dunning_emails_carry_its_description() -> None:
    for kind in ("payment_failed", "final_notice", "payment_uncollected"):
        event = EVENTS[kind].model_copy(update={"description": "Setup fee", "subscription_id": None})
        plan = plan_email(envelope(event), BASE)
        assert plan is not None and plan.context["description"] == "Setup fee", kind


def test_a_subscriptions_final_notice_warns_of_the_suspension() -> None:
    plan = plan_email(envelope(EVENTS["final_notice"]), BASE)

    assert plan is not None and plan.context["suspends_subscription"] is True
    text = render_email(plan.template, plan.context | {"customer_name": "Ada"}).text
    assert "If it fails, your\nsubscription will be suspended." in text


def test_a_one_off_payments_final_notice_threatens_no_suspension_but_names_the_last_attempt() -> None:
    event = EVENTS["final_notice"].model_copy(update={"subscription_id": None, "payment_id": uuid.uuid4()})

    plan = plan_email(envelope(event), BASE)

    assert plan is not None and (plan.template, plan.context["suspends_subscription"]) == ("final_notice", False)
    rendered = render_email(plan.template, plan.context | {"customer_name": "Ada"})
    for part in (rendered.subject, rendered.text, rendered.html):
        assert "suspend" not in part and "subscription" not in part and "invoice" not in part
    assert "€10.00" in rendered.text and "will not try this payment again" in " ".join(rendered.text.split())


def test_a_one_off_payment_given_up_on_is_told_as_uncollected_not_as_a_suspension() -> None:
    plan = plan_email(envelope(EVENTS["payment_uncollected"]), BASE)

    assert plan is not None and plan.context == {"amount": 1000, "currency": "EUR", "description": None}
    rendered = render_email(plan.template, plan.context | {"customer_name": "Ada"})
    assert rendered.subject == "Your payment of €10.00 could not be collected"
    for part in (rendered.subject, rendered.text, rendered.html):
        assert "suspend" not in part.lower() and "invoice" not in part.lower() and "reactivate" not in part.lower()


def test_a_subscriptions_exhausted_dunning_asks_for_no_email_since_its_suspension_tells_it() -> None:
    # The subscription service may not suspend (a payment or a void came first): only its event is the truth.
    exhausted = DunningExhausted(
        case_id=uuid.uuid4(), customer_id=CUSTOMER, subscription_id=uuid.uuid4(), amount=1000, currency="EUR",
        failures=4,
    )
    assert plan_email(envelope(exhausted), BASE) is None


def test_a_suspension_names_the_unpaid_amount_and_the_day_service_ends() -> None:
    ends = datetime(2027, 3, 31, tzinfo=UTC)
    suspended = EVENTS["subscription_suspended"].model_copy(update={"service_ends_at": ends})
    plan = plan_email(envelope(suspended), BASE)

    assert plan is not None and plan.context == {"amount": 1000, "currency": "EUR", "service_ends_at": ends}
    text = " ".join(render_email(plan.template, plan.context | {"customer_name": "Ada"}).text.split())
    assert "payment of €10.00" in text and "Your service continues until March 31, 2027" in text


def test_a_suspension_from_an_older_producer_names_no_amount_and_one_ending_now_no_service_date() -> None:
    older = SubscriptionSuspended(
        subscription_id=uuid.uuid4(), customer_id=CUSTOMER, status="suspended", at=WHEN, service_ends_at=WHEN
    )
    plan = plan_email(envelope(older), BASE)

    assert plan is not None and plan.context == {"amount": None, "currency": None, "service_ends_at": None}
    text = " ".join(render_email(plan.template, plan.context | {"customer_name": "Ada"}).text.split())
    assert "could not collect your payment. " in text and "continues" not in text and "None" not in text


def test_the_credit_note_email_names_the_refund_not_the_credit() -> None:
    plan = plan_email(envelope(EVENTS["credit_note_issued"]), BASE)

    assert plan is not None
    assert (plan.context["amount"], plan.context["refund_amount"], plan.context["refund_pending"]) == (1234, 1000, True)


def test_a_credit_note_without_refund_promises_none() -> None:
    event = CreditNoteIssued(
        credit_note_id=uuid.uuid4(), number="CN-2", invoice_id=uuid.uuid4(), customer_id=CUSTOMER, amount=500,
        currency="USD",
    )

    plan = plan_email(envelope(event), BASE)

    assert plan is not None and plan.context["refund_pending"] is False


def test_the_cancellation_email_carries_the_prorated_credit() -> None:
    plan = plan_email(envelope(EVENTS["subscription_canceled"]), BASE)

    assert plan is not None and (plan.context["credit_amount"], plan.context["currency"]) == (1234, "USD")


def test_a_cancellation_correction_asks_for_no_email() -> None:
    correction = EVENTS["subscription_canceled"].model_copy(update={"correction": True})

    assert plan_email(envelope(correction), BASE) is None


def test_message_id_is_fixed_by_event_and_template_in_the_senders_domain() -> None:
    event_id = uuid.uuid4()

    first = message_id(event_id, "invoice_paid", "Billing <billing@acme.test>")

    assert first == f"<{event_id}.invoice_paid@acme.test>"
    assert first == message_id(event_id, "invoice_paid", "billing@acme.test")
    assert first != message_id(event_id, "welcome", "billing@acme.test")


@pytest.mark.parametrize(
    ("name", "email", "greeting"),
    [("Ada Lovelace", "ada@example.com", "Ada Lovelace"), ("  ", "grace@example.com", "grace")],
)
def test_customers_without_a_name_are_greeted_by_their_address(name: str, email: str, greeting: str) -> None:
    assert greeting_name(name, email) == greeting
