"""a payment method added while a retry was under way: tried as soon as that retry fails

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "dunning"


def upgrade() -> None:
    op.add_column("cases", sa.Column("retry_payment_method_id", UUID(as_uuid=True)), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("cases", "retry_payment_method_id", schema=SCHEMA)
