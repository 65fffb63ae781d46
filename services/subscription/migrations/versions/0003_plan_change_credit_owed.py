"""what plan changes in a period still owe the customer, for want of payment when they happened

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "subscription"
TABLE = "subscription_periods"
CHECK = "ck_subscription_periods_change_credit_owed_not_negative"


def upgrade() -> None:
    # A plan change credits the old plan's unused days only up to what was paid; a payment recorded later
    # earns the rest (service.collection.credit_late_plan_change).
    op.add_column(
        TABLE, sa.Column("change_credit_owed", sa.BigInteger, nullable=False, server_default="0"), schema=SCHEMA
    )
    op.create_check_constraint(op.f(CHECK), TABLE, "change_credit_owed >= 0", schema=SCHEMA)


def downgrade() -> None:
    op.drop_constraint(op.f(CHECK), TABLE, schema=SCHEMA)
    op.drop_column(TABLE, "change_credit_owed", schema=SCHEMA)
