"""Request and response bodies of the subscription API (unknown fields are refused; money is StrictInt)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt
from pydantic import field_validator

from billing_shared.clock import UtcDatetime
from billing_shared.money import chargeable_currency

from ..domain.pricing import MAX_MINOR_UNITS

Interval = Literal["month", "year"]
Status = Literal["trialing", "active", "past_due", "paused", "suspended", "canceled"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _price_text(value: Any) -> str | None:
    """The demo's price as text: a JSON string, or a number (its shortest repr is what the client wrote)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("price must be a decimal number such as 49.99, or a string such as \"49.99\"")
    return repr(value)


class PlanCreate(_Strict):
    name: str = Field(min_length=1, max_length=200)
    amount: StrictInt = Field(ge=0, le=MAX_MINOR_UNITS, description="price per period in integer minor units (cents)")
    currency: str = Field(description="ISO 4217 code, e.g. USD")
    interval: Interval
    interval_count: StrictInt = Field(1, ge=1, le=36, description="bill every interval_count intervals")
    trial_days: StrictInt = Field(0, ge=0, le=730)

    _check_currency = field_validator("currency")(chargeable_currency)


class PlanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    amount: int
    currency: str
    interval: Interval
    interval_count: int
    trial_days: int
    archived: bool = False
    archived_at: datetime | None = None
    created_at: datetime


class PlanPage(BaseModel):
    data: list[PlanOut]
    has_more: bool
    next_cursor: str | None = None


class SubscriptionCreate(_Strict):
    """Either {customer_id, plan_id} or the original demo's {customer_id, plan_name, price, billing_interval}."""

    customer_id: uuid.UUID
    plan_id: uuid.UUID | None = None
    payment_method_id: uuid.UUID | None = None
    trial_days: StrictInt | None = Field(None, ge=0, le=730, description="overrides the plan's trial_days")
    plan_name: str | None = Field(None, min_length=1, max_length=200, description="demo body: the plan's name")
    price: Annotated[str | None, BeforeValidator(_price_text)] = Field(
        None,
        json_schema_extra={"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]},
        description=(
            "demo body: the price per period in MAJOR units, e.g. \"49.99\" or 49.99, converted exactly to minor "
            "units; more decimal places than the currency has (49.999 USD) is refused, never rounded"
        ),
    )
    billing_interval: Literal["monthly", "yearly"] | None = Field(None, description="demo body")
    currency: str | None = Field(None, description="demo body: ISO 4217 code of `price` (default USD)")

    _check_currency = field_validator("currency")(lambda v: chargeable_currency(v) if v is not None else v)


class ProrationLineOut(BaseModel):
    description: str
    amount: int = Field(description="signed minor units: negative = credit to the customer, positive = charge")
    currency: str
    unused_days: int | None = None
    days_in_period: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    plan_id: uuid.UUID
    plan: PlanOut
    pending_plan_id: uuid.UUID | None = Field(None, description="a downgrade that applies at the next renewal")
    payment_method_id: uuid.UUID | None = None
    status: Status
    current_period_index: int
    current_period_start: datetime
    current_period_end: datetime
    cancel_at_period_end: bool
    canceled_at: datetime | None = None
    ended_at: datetime | None = None
    trial_end: datetime | None = None
    paused: bool
    paused_at: datetime | None = None
    resumes_at: datetime | None = None
    service_ends_at: datetime | None = Field(None, description="suspended: service continues until the paid period ends")
    period_invoice_id: uuid.UUID | None = Field(
        None,
        description="the current period's invoice: GET /api/invoices/{id} (made moments after the period starts, "
        "so it may answer 404 at first; null for a period begun before this field existed)",
    )
    created_at: datetime
    updated_at: datetime


class SubscriptionChangeOut(SubscriptionOut):
    """A subscription after a cancel or plan change, with what was prorated now."""

    credit_amount: int = Field(0, description="minor units credited now for unused, paid time")
    lines: list[ProrationLineOut] = []


class SubscriptionPage(BaseModel):
    data: list[SubscriptionOut]
    has_more: bool
    next_cursor: str | None = None


class CancelRequest(_Strict):
    at_period_end: StrictBool = Field(False, description="keep the subscription until its period ends, then end it")
    proration_date: UtcDatetime | None = Field(
        None, description="admin only: prorate as of this instant (inside the current period) instead of now"
    )


class ChangePlanRequest(_Strict):
    plan_id: uuid.UUID
    effective: Literal["now", "period_end"] | None = Field(
        None, description="default: an upgrade (higher price) applies now with proration, a downgrade at period end"
    )
    proration_date: UtcDatetime | None = Field(None, description="admin only: prorate as of this instant")


class PauseRequest(_Strict):
    resumes_at: UtcDatetime | None = Field(None, description="resume automatically at this instant")


class BillingRunRequest(_Strict):
    as_of: UtcDatetime | None = Field(None, description="renew everything due at or before this instant (default now)")


class BillingRunOut(BaseModel):
    as_of: datetime
    renewed: int
    ended: int
    resumed: int
    skipped: int = Field(description="paused or suspended subscriptions whose period has ended (not billed)")
    failed: int


class MrrAmount(BaseModel):
    currency: str
    amount: int


class StatsOut(BaseModel):
    mrr: list[MrrAmount] = Field(description="monthly recurring revenue of active and past_due subscriptions")
    counts: dict[str, int]
