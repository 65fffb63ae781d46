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


def downgrade() -> None:
    op.drop_table("canceled_subscriptions", schema=SCHEMA)
