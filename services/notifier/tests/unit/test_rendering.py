"""Specification of the email templates and the MIME message built from them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from app.rendering import Attachment, RenderedEmail, build_message, email_kinds, render_email

SAMPLE_CONTEXTS: dict[str, dict[str, Any]] = {
    "welcome": {"customer_name": "Ada Lovelace"},
    "invoice_finalized": {
        "customer_name": "Ada Lovelace",
        "invoice_number": "INV-2027-0042",
        "total": 4999,
        "amount_due": 4999,
        "currency": "USD",
        "due_date": date(2027, 3, 3),
        "invoice_url": "https://billing.example.com/invoices/4f7c2a9e-1b3d-4c5e-8f90-1a2b3c4d5e6f",
    },
    "invoice_paid": {
        "customer_name": "Ada Lovelace",
        "invoice_number": "INV-2027-0042",
        "amount_paid": 4999,
        "currency": "USD",
        "paid_at": datetime(2027, 3, 3, 14, 30, tzinfo=UTC),
    },
    "payment_failed": {
        "customer_name": "Ada Lovelace",
        "amount": 1000,
        "currency": "EUR",
        "next_retry_at": datetime(2027, 3, 5, 9, 0, tzinfo=UTC),
    },
    "final_notice": {
        "customer_name": "Ada Lovelace",
        "amount": 1000,
        "currency": "EUR",
        "final_retry_at": datetime(2027, 3, 12, 9, 0, tzinfo=UTC),
    },
    "subscription_suspended": {"customer_name": "Ada Lovelace", "amount": 1000, "currency": "EUR"},
    "subscription_canceled": {"customer_name": "Ada Lovelace", "refund_amount": 1234, "currency": "USD"},
    "credit_note_issued": {
        "customer_name": "Ada Lovelace",
        "credit_note_number": "CN-2027-0007",
        "amount": 1234,
        "currency": "USD",
        "refund_pending": True,
        "refund_amount": 1234,
    },
}


def render(kind: str, **overrides: Any) -> RenderedEmail:
    return render_email(kind, SAMPLE_CONTEXTS[kind] | overrides)


class TestEveryKind:
    def test_the_template_folders_are_exactly_the_expected_kinds(self) -> None:
        assert email_kinds() == set(SAMPLE_CONTEXTS)

    @pytest.mark.parametrize("kind", sorted(SAMPLE_CONTEXTS))
    def test_kind_renders_a_one_line_subject_and_both_bodies_greeting_the_customer(self, kind: str) -> None:
        rendered = render(kind)

        assert rendered.subject and "\n" not in rendered.subject
        assert "Hello Ada Lovelace," in rendered.text
        assert "Hello Ada Lovelace," in rendered.html
        assert rendered.html.lstrip().startswith("<!DOCTYPE html>")

    @pytest.mark.parametrize("kind", sorted(SAMPLE_CONTEXTS))
    def test_kind_with_a_missing_variable_is_a_value_error_naming_it(self, kind: str) -> None:
        context = dict(SAMPLE_CONTEXTS[kind])
        del context["customer_name"]

        with pytest.raises(ValueError, match="customer_name"):
            render_email(kind, context)

    def test_unknown_kind_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="unknown email kind 'invoice_exploded'"):
            render_email("invoice_exploded", {"customer_name": "Ada"})

    def test_a_path_like_kind_is_unknown_rather_than_a_file_lookup(self) -> None:
        with pytest.raises(ValueError, match="unknown email kind"):
            render_email("../templates", {"customer_name": "Ada"})


class TestSubjectsAndAmounts:
    def test_invoice_finalized_shows_dollars_due_date_and_a_link_to_the_invoice_page(self) -> None:
        rendered = render("invoice_finalized")

        assert rendered.subject == "Invoice INV-2027-0042 for $49.99 is due March 3, 2027"
        link = "https://billing.example.com/invoices/4f7c2a9e-1b3d-4c5e-8f90-1a2b3c4d5e6f"
        assert link in rendered.text
        assert f'href="{link}"' in rendered.html

    def test_invoice_finalized_with_a_credit_applied_names_the_total_and_the_smaller_amount_due(self) -> None:
        rendered = render("invoice_finalized", total=4999, amount_due=3999)

        assert rendered.subject.startswith("Invoice INV-2027-0042 for $39.99 is due")
        assert "$49.99" in rendered.text and "Amount due: $39.99" in rendered.text

    def test_invoice_paid_is_a_receipt_with_amount_and_paid_date(self) -> None:
        rendered = render("invoice_paid")

        assert rendered.subject == "Receipt for invoice INV-2027-0042"
        assert "$49.99" in rendered.text and "March 3, 2027" in rendered.text
        assert "$49.99" in rendered.html

    def test_payment_failed_formats_euros_and_asks_for_a_new_card_before_the_retry(self) -> None:
        rendered = render("payment_failed")

        assert rendered.subject == "Your payment of €10.00 failed"
        assert "March 5, 2027" in rendered.text
        assert "update your card" in rendered.text
        assert "update your card" in rendered.html

    def test_payment_failed_after_a_hard_decline_names_no_date_and_asks_for_a_new_card(self) -> None:
        rendered = render("payment_failed", next_retry_at=None)

        assert "try again on" not in rendered.text
        assert "add a new card" in rendered.text and "add a new card" in rendered.html

    def test_final_notice_names_the_date_of_the_last_attempt(self) -> None:
        rendered = render("final_notice")

        assert rendered.subject == "Final notice: last payment attempt on March 12, 2027"
        assert "suspended" in rendered.text

    def test_subscription_suspended_names_the_unpaid_amount(self) -> None:
        rendered = render("subscription_suspended")

        assert rendered.subject == "Your subscription has been suspended"
        assert "€10.00" in rendered.text and "€10.00" in rendered.html

    def test_subscription_canceled_states_the_prorated_refund(self) -> None:
        rendered = render("subscription_canceled")

        assert rendered.subject == "Your subscription has been canceled"
        assert "Your subscription has been canceled. Prorated refund: $12.34" in " ".join(rendered.text.split())

    def test_subscription_canceled_without_credit_says_no_refund_is_due(self) -> None:
        rendered = render("subscription_canceled", refund_amount=0)

        assert "No refund is due." in rendered.text and "No refund is due." in rendered.html
        assert "Prorated refund" not in rendered.text

    def test_credit_note_with_a_refund_says_it_is_on_its_way(self) -> None:
        rendered = render("credit_note_issued")

        assert rendered.subject == "Credit note CN-2027-0007 for $12.34"
        assert "on its way" in rendered.text and "on its way" in rendered.html

    def test_credit_note_names_the_refund_amount_when_it_is_less_than_the_credit(self) -> None:
        rendered = render("credit_note_issued", amount=2000, refund_amount=1500)

        assert "A refund of $15.00 is on its way" in " ".join(rendered.text.split())

    def test_subscription_canceled_at_period_end_says_until_when_it_stays_active(self) -> None:
        rendered = render("subscription_canceled", refund_amount=0, at_period_end=True, ends_at="2027-04-01")

        assert "It stays active until April 1, 2027." in rendered.text

    def test_credit_note_without_a_refund_does_not_promise_one(self) -> None:
        rendered = render("credit_note_issued", refund_pending=False)

        assert "on its way" not in rendered.text
        assert "No refund to your payment method" in rendered.text

    def test_zero_decimal_currency_has_no_cents(self) -> None:
        assert render("payment_failed", amount=500, currency="JPY").subject == "Your payment of ¥500 failed"

    def test_date_follows_the_locale_in_the_context(self) -> None:
        rendered = render("final_notice", locale="de_DE")

        assert "12. März 2027" in rendered.subject

    def test_an_iso_string_date_from_an_event_payload_is_accepted(self) -> None:
        rendered = render("invoice_finalized", due_date="2027-03-03")

        assert rendered.subject.endswith("due March 3, 2027")

    def test_a_float_amount_is_refused_rather_than_rounded(self) -> None:
        with pytest.raises(ValueError, match="integer count of minor units"):
            render("payment_failed", amount=10.0)


class TestEscaping:
    def test_html_escapes_a_hostile_customer_name(self) -> None:
        rendered = render("welcome", customer_name="<script>x</script>")

        assert "<script>" not in rendered.html
        assert "&lt;script&gt;x&lt;/script&gt;" in rendered.html

    def test_text_keeps_the_customer_name_as_typed(self) -> None:
        rendered = render("welcome", customer_name="<script>x</script>")

        assert "Hello <script>x</script>," in rendered.text

    def test_a_newline_in_a_name_cannot_break_the_subject_header(self) -> None:
        rendered = render("welcome", customer_name="Ada\nBcc: victim@example.com")

        assert rendered.subject == "Welcome, Ada Bcc: victim@example.com"


class TestBuildMessage:
    SENDER = "Billing <billing@example.com>"
    RECIPIENT = "ada@example.com"

    def test_message_is_multipart_alternative_with_text_then_html(self) -> None:
        rendered = render("invoice_paid")

        message = build_message(rendered, self.SENDER, self.RECIPIENT)

        assert message.get_content_type() == "multipart/alternative"
        parts = [part.get_content_type() for part in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        assert message["To"] == self.RECIPIENT
        assert message["From"] == self.SENDER
        assert message["Subject"] == rendered.subject
        assert message.get_body(("plain",)).get_content().startswith("Hello Ada Lovelace,")
        assert "$49.99" in message.get_body(("html",)).get_content()

    def test_a_pdf_attachment_wraps_the_alternative_in_multipart_mixed(self) -> None:
        pdf = Attachment(filename="INV-2027-0042.pdf", content=b"%PDF-1.7 fake")

        message = build_message(render("invoice_paid"), self.SENDER, self.RECIPIENT, [pdf])

        assert message.get_content_type() == "multipart/mixed"
        alternative, attachment = list(message.iter_parts())
        assert [part.get_content_type() for part in alternative.iter_parts()] == ["text/plain", "text/html"]
        assert attachment.get_content_type() == "application/pdf"
        assert attachment.get_filename() == "INV-2027-0042.pdf"
        assert attachment.get_content() == b"%PDF-1.7 fake"

    def test_date_and_message_id_can_be_pinned_so_a_resend_is_recognisable(self) -> None:
        sent_at = datetime(2027, 3, 3, 12, 0, tzinfo=UTC)

        message = build_message(
            render("welcome"), self.SENDER, self.RECIPIENT, message_id="<evt-123@example.com>", sent_at=sent_at
        )

        assert message["Message-ID"] == "<evt-123@example.com>"
        assert message["Date"].datetime == sent_at

    def test_message_id_defaults_to_the_sender_domain(self) -> None:
        message = build_message(render("welcome"), self.SENDER, self.RECIPIENT)

        assert message["Message-ID"].endswith("@example.com>")


def test_messages_share_header_classes_and_still_parse_every_header() -> None:
    first = build_message(render("welcome"), "Billing <billing@example.com>", "ada@example.com")
    second = build_message(render("welcome"), "Zoë Billing <billing@example.com>", "bob@example.com")
    assert type(first["To"]) is type(second["To"])  # made once, not per message
    assert second["To"].addresses[0].addr_spec == "bob@example.com"
    assert second["From"].addresses[0].display_name == "Zoë Billing"
    assert b"=?utf-8?" in second.as_bytes()  # the non-ASCII name is encoded on the wire
