"""what an immediate cancel credited on a period, and the instant it prorated at (for late payments)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "subscription"
TABLE = "subscription_periods"
CHECK = "ck_subscription_periods_cancel_credit_within_credited"


def upgrade() -> None:
    # Set when an immediate cancel fell inside the period: a payment recorded later still earns its credit.
    op.add_column(TABLE, sa.Column("cancel_prorated_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.add_column(
        TABLE, sa.Column("cancel_credited", sa.BigInteger, nullable=False, server_default="0"), schema=SCHEMA
    )
    op.create_check_constraint(
        op.f(CHECK), TABLE, "cancel_credited BETWEEN 0 AND amount_credited", schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_constraint(op.f(CHECK), TABLE, schema=SCHEMA)
    op.drop_column(TABLE, "cancel_credited", schema=SCHEMA)
    op.drop_column(TABLE, "cancel_prorated_at", schema=SCHEMA)
