"""Invoice service settings (env vars; working local defaults)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from billing_shared.settings import ServiceSettings

LOCAL_LINK_SECRET = "local-invoice-link-secret-change-me"


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "invoice"

    invoice_number_prefix: str = Field("INV-", min_length=1, max_length=20)
    credit_note_prefix: str = Field("CN-", min_length=1, max_length=20)
    invoice_net_days: int = Field(7, ge=0, le=365)
    invoice_locale: str = "en_US"
    # Where people open invoices (the gateway); signed links in the API and in events point here.
    public_base_url: str = "http://localhost:8080"
    invoice_link_secret: str = LOCAL_LINK_SECRET
    # Long enough for a link in an invoice email to outlive its payment terms, dunning's retries (the customer
    # pays from that email) and an SMTP outage the email waited out; receipts are looked up weeks later too.
    invoice_link_ttl_s: int = Field(90 * 24 * 3600, ge=60)
    # WeasyPrint is CPU- and memory-hungry: at most this many PDFs render at once per replica.
    invoice_pdf_concurrency: int = Field(2, ge=1)
    # Rendered PDFs kept per replica (keyed by everything they show; typically 20-60 KB each); 0 turns it off.
    invoice_pdf_cache_size: int = Field(128, ge=0)

    @model_validator(mode="after")
    def _refuse_default_link_secret_in_production(self) -> "Settings":
        if self.environment == "production" and (
            self.invoice_link_secret == LOCAL_LINK_SECRET or len(self.invoice_link_secret) < 32
        ):
            raise ValueError("INVOICE_LINK_SECRET must be set (32+ characters) in production")
        return self
