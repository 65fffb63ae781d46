"""the id of the invoice of a subscription's current period, chosen when the period starts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "subscription"


def upgrade() -> None:
    # Nothing to backfill: a period begun before this release has an invoice whose id this service never learnt
    # (NULL: clients list /api/invoices?subscription_id=); the next period names its own.
    op.add_column("subscriptions", sa.Column("period_invoice_id", UUID(as_uuid=True), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("subscriptions", "period_invoice_id", schema=SCHEMA)
