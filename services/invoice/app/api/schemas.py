"""Response bodies of the invoice API: amounts are integer minor units with their ISO currency."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from ..domain.states import InvoiceStatus


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Period(BaseModel):
    start: datetime
    end: datetime


class LineOut(_Out):
    id: uuid.UUID
    kind: str
    description: str
    amount: int
    quantity: int
    currency: str
    period_start: datetime | None = None
    period_end: datetime | None = None


class RefundShareOut(BaseModel):
    payment_id: uuid.UUID
    amount: int


class CreditNoteOut(_Out):
    id: uuid.UUID
    number: str
    invoice_id: uuid.UUID
    customer_id: uuid.UUID
    subscription_id: uuid.UUID | None = None
    amount: int
    currency: str
    reason: str
    refund_due: bool
    refund_amount: int
    payment_id: uuid.UUID | None = None  # the first payment refunded; all of them: refunds
    refunds: list[RefundShareOut] = []
    issued_at: datetime


class InvoiceOut(_Out):
    id: uuid.UUID
    number: str | None
    status: InvoiceStatus
    kind: str
    billing_reason: str
    customer_id: uuid.UUID
    subscription_id: uuid.UUID | None = None
    customer_name: str
    customer_email: str
    currency: str
    subtotal: int
    total: int
    amount_paid: int
    amount_credited: int
    amount_refunded: int
    amount_due: int
    period: Period | None = None
    lines: list[LineOut]
    credit_notes: list[CreditNoteOut]
    payment_id: uuid.UUID | None = None
    created_at: datetime
    finalized_at: datetime | None = None
    due_at: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None
    marked_uncollectible_at: datetime | None = None
    html_url: str
    pdf_url: str


class InvoicePage(BaseModel):
    data: list[InvoiceOut]
    has_more: bool
    next_cursor: str | None = None


class CreditNotePage(BaseModel):
    data: list[CreditNoteOut]
    has_more: bool
    next_cursor: str | None = None


class Outstanding(BaseModel):
    currency: str
    amount: int


class InvoiceStats(BaseModel):
    counts: dict[str, int]
    overdue: int
    outstanding: list[Outstanding]
