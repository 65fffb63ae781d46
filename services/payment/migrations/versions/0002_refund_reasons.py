"""refunds owed by the invoice service: a credit note refunds from several payments; money beyond what an
invoice owed is refunded too (reason)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "payment"
REASONS = "reason IN ('requested', 'credit_note', 'overpayment')"


def upgrade() -> None:
    # One refund per payment a credit note refunds from; each is still once, by its gateway key.
    op.drop_constraint(op.f("uq_refunds_credit_note_id"), "refunds", schema=SCHEMA)
    op.create_index("ix_refunds_credit_note", "refunds", ["credit_note_id"], schema=SCHEMA)
    op.add_column(
        "refunds", sa.Column("reason", sa.String(20), nullable=False, server_default="requested"), schema=SCHEMA
    )
    op.execute(f"UPDATE {SCHEMA}.refunds SET reason = 'credit_note' WHERE credit_note_id IS NOT NULL")
    op.create_check_constraint(op.f("ck_refunds_reason_known"), "refunds", REASONS, schema=SCHEMA)


def downgrade() -> None:
    op.drop_constraint(op.f("ck_refunds_reason_known"), "refunds", schema=SCHEMA)
    op.drop_column("refunds", "reason", schema=SCHEMA)
    op.drop_index("ix_refunds_credit_note", "refunds", schema=SCHEMA)
    op.create_unique_constraint(op.f("uq_refunds_credit_note_id"), "refunds", ["credit_note_id"], schema=SCHEMA)
