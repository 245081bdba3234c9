"""Image size insights: one report per image manifest, deleted with it.

Revision ID: insights
Revises: 0017_replication
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_insights"
down_revision = "0017_replication"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_insights",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("manifest_id", sa.Integer(),
                  sa.ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False,
                  unique=True),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("image_insights")
