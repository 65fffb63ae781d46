"""Payment methods (a gateway token and display details, never a card number), payments and refunds."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from billing_shared.db import make_metadata
from billing_shared.ids import new_id

metadata = make_metadata("payment")


class Base(DeclarativeBase):
    metadata = metadata


class PaymentMethod(Base):
    __tablename__ = "payment_methods"
    __table_args__ = (
        Index("ix_payment_methods_customer", "customer_id"),
        # At most one default among a customer's attached methods.
        Index(
            "uq_payment_methods_one_default",
            "customer_id",
            unique=True,
            postgresql_where=text("is_default AND detached_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    gateway_token: Mapped[str] = mapped_column(String(255))
    brand: Mapped[str] = mapped_column(String(20))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    detached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'unknown')", name="status_known"),
        CheckConstraint("source IN ('api', 'invoice', 'dunning')", name="source_known"),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
        CheckConstraint("decline_type IS NULL OR decline_type IN ('hard', 'soft')", name="decline_type_known"),
        # The invariant the refund path protects with row locks, checked once more by the database.
        CheckConstraint("refunded_amount >= 0 AND refunded_amount <= amount", name="refunds_within_amount"),
        CheckConstraint("refunded_amount = 0 OR status = 'succeeded'", name="refunds_only_when_captured"),
        Index("ix_payments_customer", "customer_id"),
        Index("ix_payments_invoice", "invoice_id"),
        Index("ix_payments_created", "created_at"),
        Index("ix_payments_reconcile", "next_reconcile_at", postgresql_where=text("status IN ('pending', 'unknown')")),
        # One system-initiated charge per invoice and attempt (the gateway key says the same).
        Index(
            "uq_payments_invoice_attempt",
            "invoice_id",
            "attempt",
            unique=True,
            postgresql_where=text("invoice_id IS NOT NULL AND source <> 'api'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    payment_method_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("payment.payment_methods.id")
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    source: Mapped[str] = mapped_column(String(20), default="api")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    dunning_case_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # The first payment of a one-off payment's retries (None for the first itself).
    original_payment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    description: Mapped[str | None] = mapped_column(String(1000))
    gateway_idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    gateway_charge_id: Mapped[str | None] = mapped_column(String(255))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    decline_type: Mapped[str | None] = mapped_column(String(10))
    # Refunded or being refunded (a refund's amount is reserved here before the gateway is asked).
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    reconcile_checks: Mapped[int] = mapped_column(Integer, default=0)
    next_reconcile_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'unknown')", name="status_known"),
        CheckConstraint("reason IN ('requested', 'credit_note', 'overpayment')", name="reason_known"),
        Index("ix_refunds_payment", "payment_id"),
        Index("ix_refunds_credit_note", "credit_note_id"),
        Index("ix_refunds_reconcile", "next_reconcile_at", postgresql_where=text("status IN ('pending', 'unknown')")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    payment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("payment.payments.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    # requested (the API), credit_note (from each payment it names), overpayment (money an invoice did not owe)
    reason: Mapped[str] = mapped_column(String(20), default="requested", server_default="requested")
    credit_note_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    gateway_idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    gateway_refund_id: Mapped[str | None] = mapped_column(String(255))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    reconcile_checks: Mapped[int] = mapped_column(Integer, default=0)
    next_reconcile_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class InvoiceCredit(Base):
    """A credit note on an invoice: it lowers what the invoice owes, so a payment of the rest pays it (see
    service_layer.charges.KnownInvoice)."""

    __tablename__ = "invoice_credits"
    __table_args__ = (Index("ix_invoice_credits_invoice", "invoice_id"),)

    credit_note_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    invoice_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    amount: Mapped[int] = mapped_column(BigInteger)


class VoidedInvoice(Base):
    """An invoice the invoice service voided: nothing is owed on it, so nothing is charged for it any more."""

    __tablename__ = "voided_invoices"

    invoice_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    voided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
