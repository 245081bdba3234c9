"""Rate limits: the configured limits per target, and one GCRA bucket per key.

Revision ID: 0020_rate_limits
Revises: 0019_oidc
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_rate_limits"
down_revision = "0019_oidc"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("target_kind", sa.String(length=16), primary_key=True),
        sa.Column("target", sa.String(length=255), primary_key=True),
        sa.Column("limits", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=160), nullable=True),
    )
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(length=600), primary_key=True),
        sa.Column("tat", sa.Float(precision=53), nullable=False),
        sa.Column("noticed_until", sa.Float(precision=53), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
    op.drop_table("rate_limits")
