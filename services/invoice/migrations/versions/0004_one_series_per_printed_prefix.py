"""one counter per printed prefix: "INV" and "INV-" print the same numbers, so they continue one series

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "invoice"


def upgrade() -> None:
    # A series kept under a prefix without its dash continues in the dashed one, from the higher of the two.
    op.execute(
        f"""
        INSERT INTO {SCHEMA}.counters (series, value)
        SELECT rtrim(series, '-') || '-', value FROM {SCHEMA}.counters WHERE series NOT LIKE '%-'
        ON CONFLICT (series) DO UPDATE SET value = GREATEST({SCHEMA}.counters.value, EXCLUDED.value)
        """
    )
    op.execute(f"DELETE FROM {SCHEMA}.counters WHERE series NOT LIKE '%-'")


def downgrade() -> None:
    pass  # the dashed series are what the older code uses for dashed prefixes; nothing to undo
