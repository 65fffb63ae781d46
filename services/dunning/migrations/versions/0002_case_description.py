"""what a one-off payment's dunning case is for: its payment's description, for the customer's emails

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

SCHEMA = "dunning"


def upgrade() -> None:
    op.add_column("cases", sa.Column("description", sa.String(1000)), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("cases", "description", schema=SCHEMA)
