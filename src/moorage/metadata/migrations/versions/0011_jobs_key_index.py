"""An index on every job's (kind, unique_key): `enqueue_once` looks finished jobs up by their key
too, and the partial index of active keys could not serve that (a full scan per push).

Revision ID: 0011_jobs_key_index
Revises: 0010_vulndb
"""

from __future__ import annotations

from alembic import op

revision = "0011_jobs_key_index"
down_revision = "0010_vulndb"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_kind_key", "jobs", ["kind", "unique_key", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_kind_key", table_name="jobs")
