"""The printable invoice: what the HTML page and its PDF show, and that customer text stays text."""

import io
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader

from app.domain.states import InvoiceStatus
from app.rendering import (
    CreditNoteView,
    InvoiceLineView,
    InvoiceView,
    render_invoice_html,
    render_invoice_pdf,
)

JAN_31 = datetime(2025, 1, 31, tzinfo=UTC)
FEB_28 = datetime(2025, 2, 28, tzinfo=UTC)


def make_view(**changes) -> InvoiceView:
    view = InvoiceView(
        id="inv_1",
        number="INV-000042",
        status=InvoiceStatus.OPEN,
        currency="USD",
        customer_name="Ada Lovelace",
        customer_email="ada@example.com",
        issued_at=JAN_31,
        due_at=datetime(2025, 2, 7, tzinfo=UTC),
        paid_at=None,
        lines=[InvoiceLineView("Pro plan (monthly)", 4999, period_start=JAN_31, period_end=FEB_28)],
        subtotal=4999,
        total=4999,
        amount_paid=0,
        amount_due=4999,
    )
    return replace(view, **changes)


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture(scope="module")
def usd_pdf() -> bytes:
    # One render shared by the PDF tests: WeasyPrint is the slow part of this suite.
    return render_invoice_pdf(make_view())


class TestHtml:
    def test_shows_what_was_refunded_only_when_something_was(self):
        paid_twice = render_invoice_html(make_view(status=InvoiceStatus.PAID, amount_paid=9998, amount_refunded=4999,
                                                   amount_due=0))
        assert "Refunded" in paid_twice and "-$49.99" in paid_twice and "$99.98" in paid_twice
        assert "Refunded" not in render_invoice_html(make_view())

    def test_the_summary_adds_up_when_a_credit_note_lowered_a_paid_invoice(self):
        """Total - credited - (paid - refunded) = due: a cancel's credit on a paid invoice, refunded."""
        canceled = render_invoice_html(make_view(status=InvoiceStatus.PAID, amount_paid=4999, amount_credited=1500,
                                                 amount_refunded=1500, amount_due=0))
        rows = re.findall(r"<tr[^>]*><td>([^<]+)</td><td class=\"num\">([^<]+)</td></tr>", canceled)
        assert rows == [("Subtotal", "$49.99"), ("Total", "$49.99"), ("Credited", "-$15.00"), ("Amount paid", "$49.99"),
                        ("Refunded", "-$15.00"), ("Amount due", "$0.00")]
        assert "Credited" not in render_invoice_html(make_view())

    def test_shows_number_customer_and_total_in_dollars(self):
        html = render_invoice_html(make_view())
        assert "INV-000042" in html
        assert "Ada Lovelace" in html
        assert "ada@example.com" in html
        assert "$49.99" in html

    def test_yen_has_no_minor_digits(self):
        view = make_view(
            currency="JPY",
            lines=[InvoiceLineView("Pro plan", 500)],
            subtotal=500,
            total=500,
            amount_due=500,
        )
        html = render_invoice_html(view)
        assert "¥500" in html
        assert "¥5.00" not in html

    def test_customer_typed_script_is_escaped(self):
        html = render_invoice_html(make_view(customer_name="<script>alert(1)</script>"))
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>" not in html

    def test_line_description_is_escaped(self):
        view = make_view(lines=[InvoiceLineView('<img src="http://evil.example/x">', 4999)])
        html = render_invoice_html(view)
        assert "<img" not in html

    def test_draft_shows_draft_instead_of_a_number(self):
        html = render_invoice_html(make_view(number=None, status=InvoiceStatus.DRAFT))
        assert "Invoice Draft" in html
        assert "None" not in html

    def test_shows_line_period_and_dates(self):
        html = render_invoice_html(make_view())
        assert "Jan 31, 2025 – Feb 28, 2025" in html
        assert "Feb 7, 2025" in html

    def test_negative_credit_line_and_amounts_paid_and_due(self):
        view = make_view(
            lines=[InvoiceLineView("Pro plan", 4999), InvoiceLineView("Unused time on Basic", -1000)],
            subtotal=3999,
            total=3999,
            amount_paid=1000,
            amount_due=2999,
        )
        html = render_invoice_html(view)
        assert "-$10.00" in html
        assert "$39.99" in html
        assert "$29.99" in html

    def test_paid_invoice_shows_status_and_paid_date(self):
        html = render_invoice_html(
            make_view(status="paid", paid_at=datetime(2025, 2, 1, tzinfo=UTC), amount_paid=4999, amount_due=0)
        )
        assert "status-paid" in html
        assert "Feb 1, 2025" in html

    def test_credit_notes_are_listed_when_present(self):
        note = CreditNoteView("CN-000001", 1500, "Canceled early")
        html = render_invoice_html(make_view(credit_notes=[note]))
        assert "CN-000001" in html
        assert "Canceled early" in html
        assert "$15.00" in html
        assert "Credit notes" not in render_invoice_html(make_view())

    def test_page_references_no_external_resources(self):
        html = render_invoice_html(make_view())
        assert "http" not in html
        assert "src=" not in html


class TestView:
    def test_is_frozen(self):
        view = make_view()
        with pytest.raises(AttributeError):
            view.total = 1  # type: ignore[misc]

    def test_lines_given_as_a_list_are_kept_as_a_tuple(self):
        assert isinstance(make_view().lines, tuple)

    def test_unknown_currency_is_refused(self):
        with pytest.raises(ValueError, match="unknown currency"):
            make_view(currency="XYZ")


class TestPdf:
    def test_is_a_pdf(self, usd_pdf):
        assert usd_pdf.startswith(b"%PDF")

    def test_text_holds_number_customer_and_total(self, usd_pdf):
        text = pdf_text(usd_pdf)
        assert "INV-000042" in text
        assert "Ada Lovelace" in text
        assert "$49.99" in text

    def test_title_metadata_is_the_invoice_number(self, usd_pdf):
        assert PdfReader(io.BytesIO(usd_pdf)).metadata.title == "Invoice INV-000042"
