"""Invoices, their lines and payments, credit notes, numbering counters and the customer projection."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from billing_shared.db import make_metadata
from billing_shared.ids import new_id

metadata = make_metadata("invoice")

STATUSES = ("draft", "open", "paid", "void", "uncollectible")
KINDS = ("period", "plan_change")


class Base(DeclarativeBase):
    metadata = metadata


class Customer(Base):
    """Projection of the customer service's customers, for the bill-to block (fed by customer.* events)."""

    __tablename__ = "customers"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    # occurred_at of the event that wrote this row: an older event arriving late changes nothing.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        # One invoice per subscription period (and per plan change: its id, or for older events its effective
        # time), whatever the number of deliveries. For period invoices effective_at = period_start.
        UniqueConstraint(
            "subscription_id", "period_start", "kind", "effective_at", "change_id",
            name="uq_invoices_subscription_period", postgresql_nulls_not_distinct=True,
        ),
        CheckConstraint(f"status IN {STATUSES}", name="status_known"),
        CheckConstraint(f"kind IN {KINDS}", name="kind_known"),
        CheckConstraint("amount_paid >= 0 AND amount_credited >= 0 AND amount_refunded >= 0 AND amount_due >= 0", name="amounts_non_negative"),
        CheckConstraint("status = 'draft' OR number IS NOT NULL", name="finalized_has_number"),
        Index("ix_invoices_customer", "customer_id", "id"),
        Index("ix_invoices_subscription", "subscription_id", "id"),
        Index("ix_invoices_status", "status", "due_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    number: Mapped[str | None] = mapped_column(String(40), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    kind: Mapped[str] = mapped_column(String(20))
    billing_reason: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    plan_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    payment_method_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    effective_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    change_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))  # the plan change it bills
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_credited: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_due: Mapped[int] = mapped_column(BigInteger, default=0)
    # Bill-to as it was at finalization (the legal record); empty if the projection had not caught up.
    customer_name: Mapped[str] = mapped_column(String(200), default="")
    customer_email: Mapped[str] = mapped_column(String(320), default="")
    payment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finalized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    marked_uncollectible_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), onupdate=func.now())

    lines: Mapped[list[InvoiceLine]] = relationship(
        order_by="InvoiceLine.position", lazy="raise", cascade="all, delete-orphan"
    )
    credit_notes: Mapped[list[CreditNote]] = relationship(order_by="CreditNote.number", lazy="raise")


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_id", "position", name="uq_invoice_lines_position"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    invoice_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("invoice.invoices.id"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(500))
    amount: Mapped[int] = mapped_column(BigInteger)  # per unit, signed: negative = credit
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class InvoicePayment(Base):
    """Each successful payment applied to an invoice, once (payment ids are unique)."""

    __tablename__ = "invoice_payments"
    __table_args__ = (
        Index("ix_invoice_payments_invoice_id", "invoice_id"),
        CheckConstraint("refunded >= 0 AND refunded <= amount", name="refunded_within_amount"),
    )

    payment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    invoice_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("invoice.invoices.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # What of it was given back: beyond what the invoice owed, or by a credit note.
    refunded: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class CreditNote(Base):
    __tablename__ = "credit_notes"
    __table_args__ = (
        CheckConstraint("amount > 0 AND refund_amount >= 0 AND refund_amount <= amount", name="amounts_valid"),
        Index("ix_credit_notes_invoice", "invoice_id"),
        Index("ix_credit_notes_customer", "customer_id", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    invoice_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("invoice.invoices.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(200), default="")
    refund_due: Mapped[bool] = mapped_column(Boolean, default=False)
    refund_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    payment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # Where refund_amount comes from: [{"payment_id", "amount"}], in the order taken (crediting._take_refund).
    refunds: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default=text("'[]'::jsonb"))
    # What the note is for (a cancellation, a plan change at a time): the same fact credits once.
    source_key: Mapped[str] = mapped_column(String(200), unique=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Counter(Base):
    """One row per number series (keyed by prefix); incremented under its row lock when a number is issued."""

    __tablename__ = "counters"

    series: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
