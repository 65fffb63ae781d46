"""the invoices dunning chases for a subscription: it is active again once the last of them is paid or voided

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "subscription"


def upgrade() -> None:
    # Nothing to backfill: a subscription past due before this release has no invoice on record, and the next
    # invoice paid or voided makes it active, as before.
    op.create_table(
        "overdue_invoices",
        sa.Column("invoice_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("subscription_id", UUID(as_uuid=True), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_overdue_invoices_subscription_id", "overdue_invoices", ["subscription_id"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_table("overdue_invoices", schema=SCHEMA)
