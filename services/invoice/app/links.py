"""Signed, expiring links to an invoice's HTML page and PDF, for emails and the dashboard."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from billing_shared import clock

from .domain import links


@dataclass(frozen=True)
class InvoiceLinks:
    base_url: str
    secret: str
    ttl_s: int

    def token(self, invoice_id: uuid.UUID) -> str:
        # Link expiry is access control, not a business date: wall time, not the (simulated) clock.
        expires = int(clock.wall_now().timestamp()) + self.ttl_s
        return links.sign(self.secret, invoice_id, expires)

    def html_url(self, invoice_id: uuid.UUID, token: str | None = None) -> str:
        return f"{self.base_url.rstrip('/')}/invoices/{invoice_id}?sig={token or self.token(invoice_id)}"

    def pdf_url(self, invoice_id: uuid.UUID, token: str | None = None) -> str:
        return f"{self.base_url.rstrip('/')}/api/invoices/{invoice_id}.pdf?sig={token or self.token(invoice_id)}"

    def urls(self, invoice_id: uuid.UUID) -> tuple[str, str]:
        token = self.token(invoice_id)
        return self.html_url(invoice_id, token), self.pdf_url(invoice_id, token)

    def verify(self, invoice_id: uuid.UUID, token: str) -> bool:
        return links.verify(self.secret, invoice_id, token, int(clock.wall_now().timestamp()))
