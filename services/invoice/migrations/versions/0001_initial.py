"""invoices, lines, payments, credit notes, counters, customer projection and the plumbing tables

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from billing_shared.plumbing_tables import create_plumbing_tables, drop_plumbing_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "invoice"


def _ts(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)


def _money(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def upgrade() -> None:
    create_plumbing_tables(op, SCHEMA)
    op.create_table(
        "customers",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        _ts("updated_at", nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "counters",
        sa.Column("series", sa.String(40), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.create_table(
        "invoices",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("number", sa.String(40), unique=True),
        sa.Column("status", sa.String(20), nullable=False, server_default="draft"),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("billing_reason", sa.String(40), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("subscription_id", UUID(as_uuid=True)),
        sa.Column("plan_id", UUID(as_uuid=True)),
        sa.Column("payment_method_id", UUID(as_uuid=True)),
        _ts("period_start"),
        _ts("period_end"),
        _ts("effective_at"),
        sa.Column("currency", sa.String(3), nullable=False),
        _money("subtotal"),
        _money("total"),
        _money("amount_paid"),
        _money("amount_credited"),
        _money("amount_refunded"),
        _money("amount_due"),
        sa.Column("customer_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("customer_email", sa.String(320), nullable=False, server_default=""),
        sa.Column("payment_id", UUID(as_uuid=True)),
        _ts("created_at", nullable=False),
        _ts("finalized_at"),
        _ts("due_at"),
        _ts("paid_at"),
        _ts("voided_at"),
        _ts("marked_uncollectible_at"),
        _ts("updated_at", nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint(
            "subscription_id", "period_start", "kind", "effective_at", name="uq_invoices_subscription_period"
        ),
        sa.CheckConstraint("status IN ('draft', 'open', 'paid', 'void', 'uncollectible')", name="status_known"),
        sa.CheckConstraint("kind IN ('period', 'plan_change')", name="kind_known"),
        sa.CheckConstraint(
            "amount_paid >= 0 AND amount_credited >= 0 AND amount_refunded >= 0 AND amount_due >= 0",
            name="amounts_non_negative",
        ),
        sa.CheckConstraint("status = 'draft' OR number IS NOT NULL", name="finalized_has_number"),
        schema=SCHEMA,
    )
    op.create_index("ix_invoices_customer", "invoices", ["customer_id", "id"], schema=SCHEMA)
    op.create_index("ix_invoices_subscription", "invoices", ["subscription_id", "id"], schema=SCHEMA)
    op.create_index("ix_invoices_status", "invoices", ["status", "due_at"], schema=SCHEMA)
    op.create_table(
        "invoice_lines",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("invoice_id", UUID(as_uuid=True), sa.ForeignKey(f"{SCHEMA}.invoices.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False, server_default="1"),
        sa.Column("currency", sa.String(3), nullable=False),
        _ts("period_start"),
        _ts("period_end"),
        sa.UniqueConstraint("invoice_id", "position", name="uq_invoice_lines_position"),
        schema=SCHEMA,
    )
    op.create_table(
        "invoice_payments",
        sa.Column("payment_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("invoice_id", UUID(as_uuid=True), sa.ForeignKey(f"{SCHEMA}.invoices.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _ts("paid_at", nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_invoice_payments_invoice_id", "invoice_payments", ["invoice_id"], schema=SCHEMA)
    op.create_table(
        "credit_notes",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("number", sa.String(40), nullable=False, unique=True),
        sa.Column("invoice_id", UUID(as_uuid=True), sa.ForeignKey(f"{SCHEMA}.invoices.id"), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("subscription_id", UUID(as_uuid=True)),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False, server_default=""),
        sa.Column("refund_due", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("refund_amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("payment_id", UUID(as_uuid=True)),
        sa.Column("source_key", sa.String(200), nullable=False, unique=True),
        _ts("issued_at", nullable=False),
        sa.CheckConstraint("amount > 0 AND refund_amount >= 0 AND refund_amount <= amount", name="amounts_valid"),
        schema=SCHEMA,
    )
    op.create_index("ix_credit_notes_invoice", "credit_notes", ["invoice_id"], schema=SCHEMA)
    op.create_index("ix_credit_notes_customer", "credit_notes", ["customer_id", "id"], schema=SCHEMA)


def downgrade() -> None:
    for table in ("credit_notes", "invoice_payments", "invoice_lines", "invoices", "counters", "customers"):
        op.drop_table(table, schema=SCHEMA)
    drop_plumbing_tables(op, SCHEMA)
