"""Dunning cases (one per unpaid invoice, or per failed one-off payment), their attempts, and the subscriptions
known to be canceled."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from billing_shared.db import make_metadata
from billing_shared.ids import new_id

metadata = make_metadata("dunning")


class Base(DeclarativeBase):
    metadata = metadata


class DunningCase(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_customer", "customer_id", "id"),
        Index("ix_cases_subscription_open", "subscription_id", postgresql_where=text("status = 'open'")),
        Index("ix_cases_status", "status", "id"),
        Index("ix_cases_due", "next_retry_at", postgresql_where=text("status = 'open' AND next_retry_at IS NOT NULL")),
        Index("ix_cases_waiting", "wait_until", postgresql_where=text("status = 'open' AND wait_until IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    # "invoice:<id>" or "payment:<id>": one case per unpaid invoice / failed one-off payment.
    case_key: Mapped[str] = mapped_column(String(80), unique=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    payment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))  # the payment that failed first
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    # What a one-off payment was for (its description), for the customer's emails.
    description: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20), default="open")
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    waiting_for_payment_method: Mapped[bool] = mapped_column(Boolean, default=False)
    wait_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A payment method added while a retry was under way (on another method): tried as soon as that retry fails.
    retry_payment_method_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    last_failure_code: Mapped[str | None] = mapped_column(String(100))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    recovered_by_payment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Attempt(Base):
    """One charge attempt of a case: the first failure, then each retry from dispatch to outcome."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("case_id", "attempt", name="uq_attempts_case_attempt"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("dunning.cases.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(30))  # initial | schedule | payment_method
    outcome: Mapped[str] = mapped_column(String(20))  # pending | failed | succeeded
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payment_method_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    succeeded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    decline_type: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CanceledSubscription(Base):
    """A subscription dunning heard was canceled: a failure of its invoices that arrives later opens no chase."""

    __tablename__ = "canceled_subscriptions"

    subscription_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # When the cancellation took effect (its event's time: the period's end for a cancel at period end).
    canceled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VoidedInvoice(Base):
    """An invoice dunning heard was voided: a failure of its charge that arrives later opens no chase."""

    __tablename__ = "voided_invoices"

    invoice_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    voided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AddedPaymentMethod(Base):
    """A payment method a customer added, and when: a failure it came after is retried on it, whichever of the two
    events dunning hears first."""

    __tablename__ = "added_payment_methods"
    __table_args__ = (Index("ix_added_payment_methods_customer", "customer_id", "added_at"),)

    payment_method_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
