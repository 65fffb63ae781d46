"""dunning cases, their attempts and the plumbing tables

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

SCHEMA = "dunning"


def upgrade() -> None:
    create_plumbing_tables(op, SCHEMA)
    op.create_table(
        "cases",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("case_key", sa.String(80), nullable=False, unique=True),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("invoice_id", UUID(as_uuid=True)),
        sa.Column("payment_id", UUID(as_uuid=True), nullable=False),
        sa.Column("subscription_id", UUID(as_uuid=True)),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="open"),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_retry_at", sa.DateTime(timezone=True)),
        sa.Column("waiting_for_payment_method", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("wait_until", sa.DateTime(timezone=True)),
        sa.Column("last_failure_code", sa.String(100)),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("recovered_by_payment_id", UUID(as_uuid=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("status IN ('open', 'recovered', 'exhausted', 'canceled')", name="status_known"),
        sa.CheckConstraint("amount >= 0", name="amount_not_negative"),
        sa.CheckConstraint("failures >= 0", name="failures_not_negative"),
        schema=SCHEMA,
    )
    op.create_index("ix_cases_customer", "cases", ["customer_id", "id"], schema=SCHEMA)
    op.create_index("ix_cases_status", "cases", ["status", "id"], schema=SCHEMA)
    op.create_index(
        "ix_cases_due",
        "cases",
        ["next_retry_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open' AND next_retry_at IS NOT NULL"),
    )
    op.create_index(
        "ix_cases_waiting",
        "cases",
        ["wait_until"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open' AND wait_until IS NOT NULL"),
    )
    op.create_table(
        "attempts",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("case_id", UUID(as_uuid=True), sa.ForeignKey(f"{SCHEMA}.cases.id"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("trigger", sa.String(30), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("dispatched_at", sa.DateTime(timezone=True)),
        sa.Column("payment_method_id", UUID(as_uuid=True)),
        sa.Column("payment_id", UUID(as_uuid=True)),
        sa.Column("failed_at", sa.DateTime(timezone=True)),
        sa.Column("succeeded_at", sa.DateTime(timezone=True)),
        sa.Column("failure_code", sa.String(100)),
        sa.Column("failure_message", sa.String(500)),
        sa.Column("decline_type", sa.String(10)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("case_id", "attempt", name="uq_attempts_case_attempt"),
        sa.CheckConstraint("attempt >= 1", name="attempt_positive"),
        sa.CheckConstraint("outcome IN ('pending', 'failed', 'succeeded')", name="outcome_known"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("attempts", schema=SCHEMA)
    op.drop_table("cases", schema=SCHEMA)
    drop_plumbing_tables(op, SCHEMA)
