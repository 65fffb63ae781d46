"""payment methods, payments, refunds and the plumbing tables

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from billing_shared.plumbing_tables import create_plumbing_tables, drop_plumbing_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "payment"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    create_plumbing_tables(op, SCHEMA)
    op.create_table(
        "payment_methods",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("gateway_token", sa.String(255), nullable=False),
        sa.Column("brand", sa.String(20), nullable=False),
        sa.Column("last4", sa.String(4), nullable=False),
        sa.Column("exp_month", sa.Integer, nullable=False),
        sa.Column("exp_year", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("detached_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_index("ix_payment_methods_customer", "payment_methods", ["customer_id"], schema=SCHEMA)
    op.create_index(
        "uq_payment_methods_one_default",
        "payment_methods",
        ["customer_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("is_default AND detached_at IS NULL"),
    )

    op.create_table(
        "payments",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("payment_method_id", UUID(as_uuid=True), sa.ForeignKey(f"{SCHEMA}.payment_methods.id")),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
        sa.Column("invoice_id", UUID(as_uuid=True)),
        sa.Column("subscription_id", UUID(as_uuid=True)),
        sa.Column("dunning_case_id", UUID(as_uuid=True)),
        sa.Column("original_payment_id", UUID(as_uuid=True)),
        sa.Column("description", sa.String(1000)),
        sa.Column("gateway_idempotency_key", sa.String(255), nullable=False, unique=True),
        sa.Column("gateway_charge_id", sa.String(255)),
        sa.Column("failure_code", sa.String(100)),
        sa.Column("failure_message", sa.String(500)),
        sa.Column("decline_type", sa.String(10)),
        sa.Column("refunded_amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reconcile_checks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_reconcile_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.Column("settled_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'unknown')", name="status_known"),
        sa.CheckConstraint("source IN ('api', 'invoice', 'dunning')", name="source_known"),
        sa.CheckConstraint("attempt >= 1", name="attempt_positive"),
        sa.CheckConstraint("decline_type IS NULL OR decline_type IN ('hard', 'soft')", name="decline_type_known"),
        sa.CheckConstraint("refunded_amount >= 0 AND refunded_amount <= amount", name="refunds_within_amount"),
        sa.CheckConstraint("refunded_amount = 0 OR status = 'succeeded'", name="refunds_only_when_captured"),
        schema=SCHEMA,
    )
    op.create_index("ix_payments_customer", "payments", ["customer_id"], schema=SCHEMA)
    op.create_index("ix_payments_invoice", "payments", ["invoice_id"], schema=SCHEMA)
    op.create_index("ix_payments_created", "payments", ["created_at"], schema=SCHEMA)
    op.create_index(
        "ix_payments_reconcile",
        "payments",
        ["next_reconcile_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status IN ('pending', 'unknown')"),
    )
    op.create_index(
        "uq_payments_invoice_attempt",
        "payments",
        ["invoice_id", "attempt"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("invoice_id IS NOT NULL AND source <> 'api'"),
    )

    op.create_table(
        "refunds",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("payment_id", UUID(as_uuid=True), sa.ForeignKey(f"{SCHEMA}.payments.id"), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("credit_note_id", UUID(as_uuid=True), unique=True),
        sa.Column("gateway_idempotency_key", sa.String(255), nullable=False, unique=True),
        sa.Column("gateway_refund_id", sa.String(255)),
        sa.Column("failure_code", sa.String(100)),
        sa.Column("failure_message", sa.String(500)),
        sa.Column("reconcile_checks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_reconcile_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'unknown')", name="status_known"),
        schema=SCHEMA,
    )
    op.create_index("ix_refunds_payment", "refunds", ["payment_id"], schema=SCHEMA)
    op.create_index(
        "ix_refunds_reconcile",
        "refunds",
        ["next_reconcile_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status IN ('pending', 'unknown')"),
    )


def downgrade() -> None:
    op.drop_table("refunds", schema=SCHEMA)
    op.drop_table("payments", schema=SCHEMA)
    op.drop_table("payment_methods", schema=SCHEMA)
    drop_plumbing_tables(op, SCHEMA)
