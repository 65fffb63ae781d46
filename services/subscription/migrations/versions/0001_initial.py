"""plans, subscriptions, billing periods and the plumbing tables

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

SCHEMA = "subscription"
STATUSES = "('trialing', 'active', 'past_due', 'paused', 'suspended', 'canceled')"
RENEWABLE = "('trialing', 'active', 'past_due')"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    create_plumbing_tables(op, SCHEMA)
    op.create_table(
        "plans",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("interval", sa.String(10), nullable=False),
        sa.Column("interval_count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("trial_days", sa.Integer, nullable=False, server_default="0"),
        sa.Column("archived_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.CheckConstraint("amount >= 0", name="amount_not_negative"),
        sa.CheckConstraint("interval IN ('month', 'year')", name="interval_known"),
        sa.CheckConstraint("interval_count >= 1", name="interval_count_positive"),
        sa.CheckConstraint("trial_days >= 0", name="trial_days_not_negative"),
        schema=SCHEMA,
    )
    op.create_index("ix_plans_lookup", "plans", ["name", "amount", "currency", "interval"], schema=SCHEMA)
    op.create_table(
        "subscriptions",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("plan_id", UUID(as_uuid=True), sa.ForeignKey(f"{SCHEMA}.plans.id"), nullable=False),
        sa.Column("pending_plan_id", UUID(as_uuid=True), sa.ForeignKey(f"{SCHEMA}.plans.id")),
        sa.Column("payment_method_id", UUID(as_uuid=True)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("anchor", sa.DateTime(timezone=True), nullable=False),
        sa.Column("anchor_period_index", sa.Integer, nullable=False, server_default="0"),
        sa.Column("current_period_index", sa.Integer, nullable=False, server_default="0"),
        sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trial_end", sa.DateTime(timezone=True)),
        sa.Column("cancel_at_period_end", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("canceled_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("paused_at", sa.DateTime(timezone=True)),
        sa.Column("resumes_at", sa.DateTime(timezone=True)),
        sa.Column("service_ends_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(f"status IN {STATUSES}", name="status_known"),
        sa.CheckConstraint("current_period_start < current_period_end", name="period_not_empty"),
        schema=SCHEMA,
    )
    op.create_index("ix_subscriptions_customer", "subscriptions", ["customer_id", "id"], schema=SCHEMA)
    op.create_index("ix_subscriptions_status", "subscriptions", ["status", "id"], schema=SCHEMA)
    # The billing run's claim: renewable subscriptions by period end.
    op.create_index(
        "ix_subscriptions_due",
        "subscriptions",
        ["current_period_end"],
        schema=SCHEMA,
        postgresql_where=sa.text(f"status IN {RENEWABLE}"),
    )
    op.create_index(
        "ix_subscriptions_resumes",
        "subscriptions",
        ["resumes_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'paused' AND resumes_at IS NOT NULL"),
    )
    op.create_table(
        "subscription_periods",
        sa.Column(
            "subscription_id", UUID(as_uuid=True), sa.ForeignKey(f"{SCHEMA}.subscriptions.id"), primary_key=True
        ),
        # Unique per subscription: two billing runners can never both renew the same period.
        sa.Column("period_index", sa.Integer, primary_key=True),
        sa.Column("plan_id", UUID(as_uuid=True), sa.ForeignKey(f"{SCHEMA}.plans.id"), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False, server_default="regular"),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_paid", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("amount_credited", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("paid_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.CheckConstraint("kind IN ('trial', 'regular')", name="kind_known"),
        sa.CheckConstraint("period_start < period_end", name="not_empty"),
        sa.CheckConstraint("amount_credited <= amount_paid", name="credit_within_paid"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("subscription_periods", schema=SCHEMA)
    op.drop_table("subscriptions", schema=SCHEMA)
    op.drop_table("plans", schema=SCHEMA)
    drop_plumbing_tables(op, SCHEMA)
