"""a case's amount as a 64-bit count of minor units, like every other amount (int32 ends at 2,147,483,647:
about 21 million in a two-decimal currency such as IDR, so such a failed payment could not be chased)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "dunning"


def upgrade() -> None:
    op.alter_column("cases", "amount", type_=sa.BigInteger, existing_type=sa.Integer, existing_nullable=False,
                    schema=SCHEMA)


def downgrade() -> None:
    # Fails (numeric out of range) while a case holds an amount past int32, rather than cutting it.
    op.alter_column("cases", "amount", type_=sa.Integer, existing_type=sa.BigInteger, existing_nullable=False,
                    schema=SCHEMA)
