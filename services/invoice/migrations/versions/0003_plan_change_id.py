"""plan changes keyed by their own id: two changes at the same instant are two invoices

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

SCHEMA = "invoice"
UNIQUE = "uq_invoices_subscription_period"
COLUMNS = ["subscription_id", "period_start", "kind", "effective_at"]


def upgrade() -> None:
    op.add_column("invoices", sa.Column("change_id", UUID(as_uuid=True)), schema=SCHEMA)
    op.drop_constraint(UNIQUE, "invoices", schema=SCHEMA)
    # NULLS NOT DISTINCT (PostgreSQL 15): period invoices and older plan changes have no change id and stay
    # one per (subscription, period, kind, effective_at).
    op.create_unique_constraint(
        UNIQUE, "invoices", [*COLUMNS, "change_id"], schema=SCHEMA, postgresql_nulls_not_distinct=True
    )


def downgrade() -> None:
    op.drop_constraint(UNIQUE, "invoices", schema=SCHEMA)
    op.create_unique_constraint(UNIQUE, "invoices", COLUMNS, schema=SCHEMA)
    op.drop_column("invoices", "change_id", schema=SCHEMA)
