"""Request and response bodies of the payment API (unknown fields are refused; amounts are strict integers)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from billing_shared.clock import UtcDatetime
from billing_shared.money import chargeable_currency

# Far above any real charge, far below what a BIGINT holds.
MAX_AMOUNT = 10**12

Status = Literal["pending", "succeeded", "failed", "unknown"]
# requested: by an admin through the API; credit_note, overpayment: owed to the customer, made by this service
RefundReason = Literal["requested", "credit_note", "overpayment"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PaymentMethodCreate(_Strict):
    # Plain strings here; the card rules (Luhn, expiry, CVC) run in the handler so that their messages, which
    # never echo the number, are the ones a client sees.
    card_number: StrictStr = Field(max_length=64, description="The card number; sent to the gateway, never stored")
    exp_month: StrictInt
    exp_year: StrictInt
    cvc: StrictStr = Field(max_length=8, description="Sent to the gateway, never stored")


class PaymentMethodOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    customer_id: uuid.UUID
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str = Field(description="Keyed hash of the card number: equal for the same card")
    is_default: bool
    created_at: datetime
    detached_at: datetime | None = None


class PaymentMethodPage(BaseModel):
    data: list[PaymentMethodOut]
    has_more: bool
    next_cursor: str | None = None


class PaymentCreate(_Strict):
    customer_id: uuid.UUID
    amount: StrictInt = Field(gt=0, le=MAX_AMOUNT, description="Integer minor units (cents for USD)")
    currency: StrictStr = Field(description="ISO 4217 code, e.g. USD")
    payment_method_id: uuid.UUID | None = Field(None, description="The customer's default method if absent")
    invoice_id: uuid.UUID | None = None
    description: StrictStr | None = Field(None, max_length=1000)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return chargeable_currency(value)


class PaymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    customer_id: uuid.UUID
    amount: int
    currency: str
    status: Status
    attempt: int
    payment_method_id: uuid.UUID | None
    invoice_id: uuid.UUID | None
    subscription_id: uuid.UUID | None
    dunning_case_id: uuid.UUID | None
    description: str | None
    gateway_charge_id: str | None
    failure_code: str | None
    failure_message: str | None
    decline_type: Literal["hard", "soft"] | None
    refunded_amount: int = Field(description="Refunded, or being refunded")
    created_at: datetime
    updated_at: datetime
    settled_at: datetime | None


class PaymentPage(BaseModel):
    data: list[PaymentOut]
    has_more: bool
    next_cursor: str | None = None


class RefundCreate(_Strict):
    amount: StrictInt | None = Field(None, gt=0, le=MAX_AMOUNT, description="All that is left if absent")


class RefundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    payment_id: uuid.UUID
    customer_id: uuid.UUID
    amount: int
    currency: str
    status: Status
    reason: RefundReason
    credit_note_id: uuid.UUID | None
    gateway_refund_id: str | None
    failure_code: str | None
    created_at: datetime


class RefundPage(BaseModel):
    data: list[RefundOut]
    has_more: bool
    next_cursor: str | None = None


class ReconcileRequest(_Strict):
    as_of: UtcDatetime | None = Field(None, description="Business time to reconcile at (default: now)")


class ReconcileOut(BaseModel):
    checked: int
    settled: int
    rescheduled: int
    refunds_checked: int
    refunds_settled: int


class CollectedDay(BaseModel):
    date: str
    currency: str
    amount: int


class PaymentStats(BaseModel):
    days: int
    succeeded: int
    failed: int
    unknown: int
    pending: int
    collected: list[CollectedDay] = Field(description="Captured amounts per day (UTC) and currency, before refunds")
