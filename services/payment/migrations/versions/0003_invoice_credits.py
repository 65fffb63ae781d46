"""credit notes on invoices: what an invoice owes is what it was finalized for less its credit notes

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

SCHEMA = "payment"


def upgrade() -> None:
    # Nothing to backfill: this service kept no record of the notes issued before this release, which count as
    # before (an invoice they lowered is paid once its payments reach what it was finalized for).
    op.create_table(
        "invoice_credits",
        sa.Column("credit_note_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("invoice_id", UUID(as_uuid=True), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_invoice_credits_invoice", "invoice_credits", ["invoice_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("invoice_credits", schema=SCHEMA)
