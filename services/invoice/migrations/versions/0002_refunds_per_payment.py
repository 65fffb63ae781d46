"""refunds per payment: what each payment of an invoice has had refunded, and where a credit note's refund comes from

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "invoice"


def upgrade() -> None:
    op.add_column(
        "invoice_payments", sa.Column("refunded", sa.BigInteger, nullable=False, server_default="0"), schema=SCHEMA
    )
    # Until now every refund came from the invoice's own payment (invoices.payment_id).
    op.execute(
        f"UPDATE {SCHEMA}.invoice_payments p SET refunded = LEAST(p.amount, i.amount_refunded)"
        f" FROM {SCHEMA}.invoices i WHERE i.payment_id = p.payment_id AND i.amount_refunded > 0"
    )
    op.create_check_constraint(
        op.f("ck_invoice_payments_refunded_within_amount"),
        "invoice_payments",
        "refunded >= 0 AND refunded <= amount",
        schema=SCHEMA,
    )
    op.add_column(
        "credit_notes", sa.Column("refunds", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        schema=SCHEMA,
    )
    op.execute(
        f"UPDATE {SCHEMA}.credit_notes SET refunds = jsonb_build_array(jsonb_build_object("
        "'payment_id', payment_id, 'amount', refund_amount)) WHERE refund_amount > 0 AND payment_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_column("credit_notes", "refunds", schema=SCHEMA)
    op.drop_constraint(op.f("ck_invoice_payments_refunded_within_amount"), "invoice_payments", schema=SCHEMA)
    op.drop_column("invoice_payments", "refunded", schema=SCHEMA)
