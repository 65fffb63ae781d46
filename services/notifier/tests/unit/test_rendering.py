"""Specification of the email templates and the MIME message built from them."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime
from email.message import EmailMessage, Message
from typing import Any

import pytest
from aiosmtplib.email import extract_recipients, extract_sender, flatten_message
from aiosmtplib.protocol import LINE_ENDINGS_REGEX

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
        "description": None,
        "next_retry_at": datetime(2027, 3, 5, 9, 0, tzinfo=UTC),
    },
    "payment_recovered": {"customer_name": "Ada Lovelace", "amount": 1000, "currency": "EUR", "description": None},
    "payment_refunded": {"customer_name": "Ada Lovelace", "amount": 1500, "currency": "USD", "overpayment": False},
    "final_notice": {
        "customer_name": "Ada Lovelace",
        "amount": 1000,
        "currency": "EUR",
        "description": None,
        "final_retry_at": datetime(2027, 3, 12, 9, 0, tzinfo=UTC),
        "suspends_subscription": True,
    },
    "subscription_suspended": {
        "customer_name": "Ada Lovelace", "amount": 1000, "currency": "EUR", "service_ends_at": None,
    },
    "payment_uncollected": {"customer_name": "Ada Lovelace", "amount": 1000, "currency": "EUR", "description": None},
    "subscription_canceled": {"customer_name": "Ada Lovelace", "credit_amount": 1234, "currency": "USD"},
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

    def test_payment_failed_after_a_hard_decline_names_the_day_a_new_card_is_needed_by(self) -> None:
        rendered = render("payment_failed", next_retry_at=None, add_card_by=datetime(2024, 3, 20, tzinfo=UTC))

        assert "add a new card by March 20, 2024" in " ".join(rendered.text.split())
        assert "March 20, 2024" in rendered.html

    def test_payment_recovered_names_the_amount_collected_after_all(self) -> None:
        rendered = render("payment_recovered")

        assert rendered.subject == "Your payment of €10.00 went through"
        assert "collected your payment of €10.00" in rendered.text
        assert "€10.00" in rendered.html and "nothing more for you to do" in rendered.text

    def test_payment_refunded_names_the_amount_and_how_long_the_bank_may_take(self) -> None:
        rendered = render("payment_refunded")

        assert rendered.subject == "Refund of $15.00"
        assert "refunded $15.00 to your card" in rendered.text and "5 to 10 business days" in rendered.text
        assert "$15.00" in rendered.html
        assert "already been paid" not in rendered.text

    def test_an_overpayment_refund_says_nothing_was_owed_for_that_payment(self) -> None:
        rendered = render("payment_refunded", overpayment=True)

        assert "Your invoice had already been paid" in rendered.text and "already been paid" in rendered.html
        assert "refunded $15.00 to your card" in rendered.text

    def test_final_notice_names_the_date_of_the_last_attempt(self) -> None:
        rendered = render("final_notice")

        assert rendered.subject == "Final notice: last payment attempt on March 12, 2027"
        assert "suspended" in rendered.text

    def test_final_notice_without_a_subscription_says_it_is_the_last_attempt_for_the_payment(self) -> None:
        rendered = render("final_notice", suspends_subscription=False)

        assert rendered.subject == "Final notice: last payment attempt on March 12, 2027"
        assert "if it fails, we will not try this payment again" in " ".join(rendered.text.split())
        assert "will not try this payment again" in rendered.html
        assert "suspended" not in rendered.text and "suspended" not in rendered.html

    def test_subscription_suspended_names_the_unpaid_amount(self) -> None:
        rendered = render("subscription_suspended")

        assert rendered.subject == "Your subscription has been suspended"
        assert "€10.00" in rendered.text and "€10.00" in rendered.html

    def test_payment_uncollected_names_the_amount_and_that_it_will_not_be_tried_again(self) -> None:
        rendered = render("payment_uncollected")

        assert rendered.subject == "Your payment of €10.00 could not be collected"
        assert "could not collect your payment of €10.00, even after retrying it" in " ".join(rendered.text.split())
        assert "€10.00" in rendered.html and "will not try it again" in rendered.html

    @pytest.mark.parametrize("kind", ["payment_failed", "final_notice", "payment_uncollected", "payment_recovered"])
    def test_a_one_off_payments_emails_say_what_it_was_for_escaped_in_html(self, kind: str) -> None:
        rendered = render(kind, description="Setup fee <b>& more</b>")

        assert "€10.00 (Setup fee <b>& more</b>)" in " ".join(rendered.text.split())
        assert "€10.00</strong> (Setup fee &lt;b&gt;&amp; more&lt;/b&gt;)" in rendered.html
        assert "(" not in render(kind).text  # an invoice's debt names no description

    def test_subscription_canceled_states_the_credit_and_promises_no_refund_the_credit_note_may_not_make(self):
        rendered = render("subscription_canceled")

        assert rendered.subject == "Your subscription has been canceled"
        text = " ".join(rendered.text.split())
        assert "Your subscription has been canceled. Credit for the unused time: $12.34" in text
        assert "A credit note follows" in text and "refund" not in text.lower()

    def test_subscription_canceled_without_credit_says_nothing_is_credited(self) -> None:
        rendered = render("subscription_canceled", credit_amount=0)

        assert "nothing is credited." in rendered.text and "nothing is credited." in rendered.html
        assert "Credit for the unused time" not in rendered.text

    def test_credit_note_with_a_refund_says_it_is_on_its_way(self) -> None:
        rendered = render("credit_note_issued")

        assert rendered.subject == "Credit note CN-2027-0007 for $12.34"
        assert "on its way" in rendered.text and "on its way" in rendered.html

    def test_credit_note_names_the_refund_amount_when_it_is_less_than_the_credit(self) -> None:
        rendered = render("credit_note_issued", amount=2000, refund_amount=1500)

        assert "A refund of $15.00 is on its way" in " ".join(rendered.text.split())

    def test_subscription_canceled_at_period_end_says_it_ended_on_the_periods_last_day(self) -> None:
        # Announced once the period is over (the billing run ends it), so nothing "stays active until" then.
        rendered = render("subscription_canceled", refund_amount=0, at_period_end=True, ends_at="2027-04-01")

        text = " ".join(rendered.text.split())
        ended = "Your subscription has ended: as you asked, it was canceled at the end of its period, on April 1, 2027."
        assert ended in text
        assert "stays active" not in text and "April 1, 2027" in rendered.html

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


def wire_bytes(message: Message, *, smtputf8: bool = False) -> bytes:
    """The bytes aiosmtplib's send_message sends for this message (bar the dot-stuffing of DATA)."""
    return LINE_ENDINGS_REGEX.sub(b"\r\n", flatten_message(message, utf8=smtputf8))


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")  # text comes off the wire with SMTP's line ends


def on_the_wire(message: Message) -> EmailMessage:
    """The message as a mail client reads it: parsed back from the bytes that are sent."""
    return email.message_from_bytes(wire_bytes(message), policy=email.policy.default)  # type: ignore[return-value]


class TestBuildMessage:
    SENDER = "Billing <billing@example.com>"
    RECIPIENT = "ada@example.com"

    def test_message_is_multipart_alternative_with_text_then_html(self) -> None:
        rendered = render("invoice_paid")

        built = build_message(rendered, self.SENDER, self.RECIPIENT)
        message = on_the_wire(built)

        assert built.get_content_type() == "multipart/alternative"  # what the delivery log reads
        assert message.get_content_type() == "multipart/alternative"
        parts = [part.get_content_type() for part in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        assert message["To"] == self.RECIPIENT
        assert message["From"] == self.SENDER
        assert message["Subject"] == rendered.subject
        assert message["MIME-Version"] == "1.0"
        assert message.get_body(("plain",)).get_content().startswith("Hello Ada Lovelace,")
        assert "$49.99" in message.get_body(("html",)).get_content()

    def test_a_pdf_attachment_wraps_the_alternative_in_multipart_mixed(self) -> None:
        pdf = Attachment(filename="INV-2027-0042.pdf", content=b"%PDF-1.7 fake")

        built = build_message(render("invoice_paid"), self.SENDER, self.RECIPIENT, [pdf])
        message = on_the_wire(built)

        assert built.is_multipart() and built.get_content_type() == "multipart/mixed"  # what the delivery log reads
        assert message.get_content_type() == "multipart/mixed"
        alternative, attachment = list(message.iter_parts())
        assert [part.get_content_type() for part in alternative.iter_parts()] == ["text/plain", "text/html"]
        assert attachment.get_content_type() == "application/pdf"
        assert attachment.get_filename() == "INV-2027-0042.pdf"
        assert attachment.get_content() == b"%PDF-1.7 fake"
        assert [part.get_filename() for part in message.iter_attachments()] == ["INV-2027-0042.pdf"]

    def test_date_and_message_id_can_be_pinned_so_a_resend_is_recognisable(self) -> None:
        sent_at = datetime(2027, 3, 3, 12, 0, tzinfo=UTC)

        built = build_message(
            render("welcome"), self.SENDER, self.RECIPIENT, message_id="<evt-123@example.com>", sent_at=sent_at
        )
        message = on_the_wire(built)

        assert built["Message-ID"] == "<evt-123@example.com>"  # what the delivery log reads
        assert message["Message-ID"] == "<evt-123@example.com>"
        assert message["Date"].datetime == sent_at

    def test_message_id_defaults_to_the_sender_domain(self) -> None:
        message = on_the_wire(build_message(render("welcome"), self.SENDER, self.RECIPIENT))

        assert message["Message-ID"].endswith("@example.com>")

    @pytest.mark.parametrize(
        "subject",
        [
            "Ihre Zahlung über 10,00 € ist fehlgeschlagen",
            "Letzte Mahnung: letzter Zahlungsversuch am 12. März 2027 für die Rechnung INV-2027-0042 über 1.234,56 €",
            "お支払いに失敗しました — 請求書 INV-2027-0042 の金額 ¥5,000 を新しいカードでお支払いください",
            "Receipt for invoice INV-2027-0042, paid on March 3, 2027, for the amount of $49.99 (thank you)",
        ],
    )
    def test_a_non_ascii_subject_sender_name_and_body_round_trip_exactly(self, subject: str) -> None:
        rendered = RenderedEmail(
            subject=subject,
            text="Hallo Zoë,\n\nBetrag: 1.234,56 €  \nAb jetzt: café = ça va.\n" + "é" * 120 + "\n",
            html='<p class="x">Hallo Zoë, 1.234,56 €</p>\n<p>' + "ü" * 120 + "</p>\n",
        )
        invoice = Attachment(filename="Rechnung-März.pdf", content=b"%PDF-1.7 \x00\xff")

        built = build_message(rendered, "Zoë Billing <billing@example.com>", self.RECIPIENT, [invoice])
        raw = wire_bytes(built)
        message = email.message_from_bytes(raw, policy=email.policy.default)

        raw.decode("ascii")  # 7-bit clean: nothing depends on the server's 8BITMIME
        assert message["Subject"] == subject
        assert "\n" not in str(message["Subject"])
        [sender] = message["From"].addresses
        assert (sender.display_name, sender.addr_spec) == ("Zoë Billing", "billing@example.com")
        text, html = message.get_body(("plain",)), message.get_body(("html",))
        assert text.get_content() == crlf(rendered.text)
        assert html.get_content() == crlf(rendered.html)
        assert text["Content-Transfer-Encoding"] == html["Content-Transfer-Encoding"] == "quoted-printable"
        assert text.get_content_charset() == html.get_content_charset() == "utf-8"
        [attachment] = message.iter_attachments()
        assert (attachment.get_filename(), attachment.get_content()) == ("Rechnung-März.pdf", b"%PDF-1.7 \x00\xff")
        assert built["Subject"] == subject  # the message object holds it decoded; only the bytes are encoded

    def test_a_body_line_starting_with_from_is_not_mangled_on_the_wire(self) -> None:
        # aiosmtplib writes compat32 messages as for an mbox, where a line "From ..." would become ">From ...".
        rendered = RenderedEmail(subject="Plan change", text="Hello Ada,\nFrom March 3 you pay €12.\n",
                                 html="<p>Hello Ada,</p>\nFrom March 3 you pay €12.\n")

        raw = wire_bytes(build_message(rendered, self.SENDER, self.RECIPIENT))
        message = email.message_from_bytes(raw, policy=email.policy.default)

        assert b">From" not in raw
        text, html = message.get_body(("plain",)), message.get_body(("html",))
        assert text.get_content() == crlf(rendered.text)
        assert html.get_content() == crlf(rendered.html)
        assert text["Content-Transfer-Encoding"] == html["Content-Transfer-Encoding"] == "base64"  # no such lines

    def test_a_line_break_in_a_customer_name_cannot_add_a_header(self) -> None:
        # The name reaches a header through the welcome subject (and the bodies, which cannot hold headers).
        rendered = render("welcome", customer_name="Ada\r\nBcc: victim@example.com\r\nX-Evil: 1")

        raw = wire_bytes(build_message(rendered, self.SENDER, self.RECIPIENT))
        message = email.message_from_bytes(raw, policy=email.policy.default)

        assert message["Subject"] == "Welcome, Ada Bcc: victim@example.com X-Evil: 1"
        assert message["Bcc"] is None and message["X-Evil"] is None
        assert sorted(message.keys()) == [
            "Content-Type", "Date", "From", "MIME-Version", "Message-ID", "Subject", "To",
        ]
        headers = raw.split(b"\r\n\r\n", 1)[0]
        assert b"\nBcc:" not in headers and b"\nX-Evil:" not in headers

    @pytest.mark.parametrize("field", ["sender", "recipient", "subject"])
    @pytest.mark.parametrize("line_break", ["\r\n", "\n", "\r", "\u2028"])
    def test_a_line_break_in_an_address_or_subject_is_refused(self, field: str, line_break: str) -> None:
        values = {"sender": self.SENDER, "recipient": self.RECIPIENT, "subject": "Welcome"}
        values[field] += f"{line_break}Bcc: victim@example.com"
        rendered = RenderedEmail(subject=values["subject"], text="Hello\n", html="<p>Hello</p>\n")

        with pytest.raises(ValueError, match="line break"):
            build_message(rendered, values["sender"], values["recipient"])

    def test_a_non_ascii_display_name_of_the_recipient_is_encoded_and_the_address_kept(self) -> None:
        built = build_message(render("welcome"), self.SENDER, "Zoë Martín <zoe@example.com>")

        [recipient] = on_the_wire(built)["To"].addresses
        assert (recipient.display_name, recipient.addr_spec) == ("Zoë Martín", "zoe@example.com")
        assert extract_recipients(built) == ["zoe@example.com"]  # the RCPT TO aiosmtplib sends

    def test_a_non_ascii_domain_with_an_ascii_local_part_goes_out_idna_encoded_without_smtputf8(self) -> None:
        built = build_message(render("welcome"), "Billing <billing@bücher.de>", "Zoë Martín <zoe@straße.de>")

        raw = wire_bytes(built)  # compat32, as aiosmtplib writes a message that needs no SMTPUTF8
        raw.decode("ascii")
        [recipient] = email.message_from_bytes(raw, policy=email.policy.default)["To"].addresses
        assert (recipient.display_name, recipient.addr_spec) == ("Zoë Martín", "zoe@xn--strae-oqa.de")  # IDNA 2008
        assert extract_recipients(built) == ["zoe@xn--strae-oqa.de"]
        assert extract_sender(built) == "billing@xn--bcher-kva.de"

    def test_a_non_ascii_recipient_address_goes_out_as_utf8_headers_as_before(self) -> None:
        # RFC 6531: aiosmtplib sends it with SMTPUTF8 (and refuses if the server lacks it), headers raw UTF-8.
        rendered = RenderedEmail(subject="Ihre Zahlung über 10,00 €", text="Hallo Zoë,\n", html="<p>Hallo Zoë,</p>\n")

        built = build_message(rendered, "Zoë Billing <billing@example.com>", "zoë@example.com")
        raw = wire_bytes(built, smtputf8=True)
        message = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)

        assert extract_recipients(built) == ["zoë@example.com"]
        assert extract_sender(built) == "billing@example.com"
        assert "\r\nTo: zoë@example.com\r\n".encode() in raw
        assert "\r\nSubject: Ihre Zahlung über 10,00 €\r\n".encode() in raw
        assert message["To"].addresses[0].addr_spec == "zoë@example.com"
        assert message["From"].addresses[0].display_name == "Zoë Billing"
        assert message.get_content_type() == "multipart/alternative"
        assert message.get_body(("plain",)).get_content() == "Hallo Zoë,\r\n"
        assert built["Subject"] == rendered.subject


def test_every_header_parses_from_the_wire_and_a_non_ascii_sender_name_is_encoded() -> None:
    first = build_message(render("welcome"), "Billing <billing@example.com>", "ada@example.com")
    second = build_message(render("welcome"), "Zoë Billing <billing@example.com>", "bob@example.com")
    first_received, second_received = on_the_wire(first), on_the_wire(second)
    assert first_received["To"].addresses[0].addr_spec == "ada@example.com"
    assert second_received["To"].addresses[0].addr_spec == "bob@example.com"
    assert second_received["From"].addresses[0].display_name == "Zoë Billing"
    assert b"=?utf-8?" in wire_bytes(second)  # the non-ASCII name is encoded on the wire
    assert b"=?utf-8?" in second.as_bytes()
