"""the subscriptions known to be canceled: a failure reported after its subscription.canceled is not chased

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "dunning"


def upgrade() -> None:
    op.create_table(
        "canceled_subscriptions",
        sa.Column("subscription_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    # What a cancellation looks up: the subscription's open cases.
    op.create_index(
        "ix_cases_subscription_open", "cases", ["subscription_id"], schema=SCHEMA,
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_index("ix_cases_subscription_open", "cases", schema=SCHEMA)
    op.drop_table("canceled_subscriptions", schema=SCHEMA)
