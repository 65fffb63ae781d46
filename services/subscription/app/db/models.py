"""Plans, subscriptions and their billing periods (one row per period, unique per subscription and index)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, String, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from billing_shared.db import make_metadata
from billing_shared.ids import new_id

metadata = make_metadata("subscription")


class Base(DeclarativeBase):
    metadata = metadata


class Plan(Base):
    """A price: immutable once created (a new price is a new plan); archived plans take no new subscribers."""

    __tablename__ = "plans"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(10))
    interval_count: Mapped[int] = mapped_column(Integer, default=1)
    trial_days: Mapped[int] = mapped_column(Integer, default=0)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Subscription(Base):
    """A customer's subscription. Periods are anchored: period k = period_at(anchor, k - anchor_period_index)."""

    __tablename__ = "subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    plan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("subscription.plans.id"))
    pending_plan_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("subscription.plans.id"))
    payment_method_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(20))
    anchor: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    anchor_period_index: Mapped[int] = mapped_column(Integer, default=0)
    current_period_index: Mapped[int] = mapped_column(Integer, default=0)
    current_period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    current_period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trial_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resumes_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    service_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The id the invoice service gives the current period's invoice (chosen here, sent in the period's event).
    period_invoice_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    plan: Mapped[Plan] = relationship(foreign_keys=[plan_id], lazy="raise")


class SubscriptionPeriod(Base):
    """One billing period of a subscription: what it costs, and what was paid and credited for it."""

    __tablename__ = "subscription_periods"

    subscription_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("subscription.subscriptions.id"), primary_key=True
    )
    period_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("subscription.plans.id"))
    kind: Mapped[str] = mapped_column(String(10), default="regular")  # trial | regular
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_credited: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # An immediate cancel inside this period: the instant it prorated at, and the part of amount_credited it
    # credited (a payment recorded after the cancel earns the rest, see service.collection).
    cancel_prorated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_credited: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # What plan changes inside this period credited short for want of payment: a later payment earns it.
    change_credit_owed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @property
    def creditable(self) -> int:
        """What was paid for this period and not yet credited back: the most any further credit may be."""
        return max(self.amount_paid - self.amount_credited, 0)

    @property
    def is_paid(self) -> bool:
        return self.amount == 0 or self.amount_paid > 0


class VoidedInvoice(Base):
    """An invoice of a subscription that was voided: what dunning announced about it afterwards is stale."""

    __tablename__ = "voided_invoices"

    invoice_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    voided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OverdueInvoice(Base):
    """An invoice dunning chases for a past-due or suspended subscription: while one is left unpaid, paying or
    voiding another does not make the subscription active."""

    __tablename__ = "overdue_invoices"

    invoice_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))


plans = Plan.__table__
subscriptions = Subscription.__table__
periods = SubscriptionPeriod.__table__
