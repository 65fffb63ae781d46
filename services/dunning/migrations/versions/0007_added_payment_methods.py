"""the payment methods customers added, and when: a failure a new card came after is retried on it, whichever
event dunning hears first

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "dunning"


def upgrade() -> None:
    op.create_table(
        "added_payment_methods",
        sa.Column("payment_method_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_added_payment_methods_customer", "added_payment_methods", ["customer_id", "added_at"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_table("added_payment_methods", schema=SCHEMA)
