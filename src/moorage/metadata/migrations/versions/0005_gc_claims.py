"""GC claims on pending storage deletions: who is deleting the bytes, since when.

Revision ID: 0005_gc_claims
Revises: 0004_login_throttle
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_gc_claims"
down_revision = "0004_login_throttle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pending_deletions", sa.Column("claimed_at", sa.Float(), nullable=True))
    op.add_column("pending_deletions", sa.Column("claimer", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pending_deletions") as batch:
        batch.drop_column("claimer")
        batch.drop_column("claimed_at")
