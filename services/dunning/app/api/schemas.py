"""Request and response bodies of the dunning API (unknown fields are refused)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from billing_shared.clock import UtcDatetime

from ..domain.cases import CaseStatus


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunRequest(_Strict):
    as_of: UtcDatetime | None = Field(None, description="treat this as the current time (default: now)")


class RunOut(BaseModel):
    as_of: datetime
    retries_due: int
    exhausted: int


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    attempt: int
    trigger: str = Field(description="initial | schedule | payment_method | unscheduled")
    outcome: str = Field(description="pending | failed | succeeded")
    due_at: datetime | None = None
    dispatched_at: datetime | None = None
    payment_id: uuid.UUID | None = None
    payment_method_id: uuid.UUID | None = None
    failed_at: datetime | None = None
    succeeded_at: datetime | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    decline_type: str | None = None


class CaseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    customer_id: uuid.UUID
    invoice_id: uuid.UUID | None = None
    payment_id: uuid.UUID
    subscription_id: uuid.UUID | None = None
    amount: int
    currency: str
    description: str | None = Field(None, description="A one-off payment's description (None for an invoice)")
    status: CaseStatus
    failures: int
    attempts_allowed: int
    next_retry_at: datetime | None = None
    waiting_for_payment_method: bool
    wait_until: datetime | None = None
    last_failure_code: str | None = None
    opened_at: datetime
    closed_at: datetime | None = None
    recovered_by_payment_id: uuid.UUID | None = None


class CaseDetail(CaseOut):
    attempts: list[AttemptOut]


class CasePage(BaseModel):
    data: list[CaseOut]
    has_more: bool
    next_cursor: str | None = None


class StatsOut(BaseModel):
    open: int
    recovered: int
    exhausted: int
    canceled: int
    recovery_rate: float | None = Field(description="recovered / (recovered + exhausted); null before any case ended")
