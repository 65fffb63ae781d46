"""The printable invoice: one Jinja2 template rendered to HTML, and the same HTML rendered to PDF."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date
from billing_shared.clock import ensure_utc
from billing_shared.money import format_money, normalize_currency
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from app.domain.states import InvoiceStatus

TEMPLATES_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True, slots=True)
class InvoiceLineView:
    """One printed line; `amount` is the line total in the invoice currency's minor units."""

    description: str
    amount: int
    period_start: datetime | None = None
    period_end: datetime | None = None
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class CreditNoteView:
    number: str
    amount: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class InvoiceView:
    """Everything the invoice page shows, already computed; rendering does no arithmetic."""

    id: str
    number: str | None  # None while the invoice is a draft
    status: InvoiceStatus
    currency: str
    customer_name: str
    customer_email: str
    issued_at: datetime | None
    due_at: datetime | None
    paid_at: datetime | None
    lines: Sequence[InvoiceLineView]
    subtotal: int
    total: int
    amount_paid: int
    amount_due: int
    # Taken off what the invoice owes by its credit notes. Shown only when not 0.
    amount_credited: int = 0
    # Given back: a credit note's refund, or a payment beyond what the invoice owed. Shown only when not 0.
    amount_refunded: int = 0
    credit_notes: Sequence[CreditNoteView] = field(default_factory=tuple)
    locale: str = "en_US"

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", InvoiceStatus(self.status))
        object.__setattr__(self, "currency", normalize_currency(self.currency))
        # Tuples keep a frozen view from being changed through a list it was given.
        object.__setattr__(self, "lines", tuple(self.lines))
        object.__setattr__(self, "credit_notes", tuple(self.credit_notes))


def _format_day(value: datetime | None, locale: str) -> str:
    if value is None:
        return ""
    return format_date(ensure_utc(value).date(), format="medium", locale=locale)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        # Unconditional: names, emails and descriptions are typed by customers.
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_invoice_html(invoice: InvoiceView) -> str:
    template = _environment().get_template("invoice.html")
    return template.render(
        invoice=invoice,
        money=lambda amount: format_money(amount, invoice.currency, invoice.locale),
        day=lambda value: _format_day(value, invoice.locale),
    )


def render_invoice_pdf(invoice: InvoiceView, font_config: Any = None) -> bytes:
    """The PDF of exactly the HTML page; every external fetch is refused (the page embeds all it needs).

    `font_config`, a weasyprint FontConfiguration, may be reused between renders on ONE thread (see pdfs.py).
    """
    # Imported here so the HTML path (and its tests) do not load pango and friends.
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    no_network = URLFetcher(allowed_protocols=(), allow_redirects=False)
    document = HTML(string=render_invoice_html(invoice), base_url=None, url_fetcher=no_network)
    return document.write_pdf(font_config=font_config)
