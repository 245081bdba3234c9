"""Pull policies: each namespace's admission policy at pull (`moorage policy set`).

Revision ID: 0016_pull_policies
Revises: 0015_cache
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_pull_policies"
down_revision = "0015_cache"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pull_policies",
        sa.Column("namespace", sa.String(length=255), primary_key=True),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=160), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("pull_policies")
