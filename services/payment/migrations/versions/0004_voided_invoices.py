"""voided invoices: a payment by hand or a dunning retry of one charges nothing

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

SCHEMA = "payment"


def upgrade() -> None:
    # Nothing to backfill: an invoice voided before this release is charged as before (and the payment refunded
    # as an overpayment by the invoice service).
    op.create_table(
        "voided_invoices",
        sa.Column("invoice_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("voided_invoices", schema=SCHEMA)
