"""The OSV data artifact last imported from (the periodic `vulndb.import-oci` job).

Revision ID: 0021_vuln_sources
Revises: 0020_rate_limits
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_vuln_sources"
down_revision = "0020_rate_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vuln_sources",
        sa.Column("source", sa.String(length=400), primary_key=True),
        sa.Column("digest", sa.String(length=200), nullable=False),
        sa.Column("imported_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("vuln_sources")
