"""Replication rules gain filters (platforms, artifact types), a cron schedule (with the last
tick a run was queued for) and a bandwidth cap; runs gain notes (what a filter left out); caches
keep their upstreams' tag lists (`cache_tag_lists`).

Revision ID: 0022_replication_filters
Revises: 0021_vuln_sources
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_replication_filters"
down_revision = "0021_vuln_sources"
branch_labels = None
depends_on = None

COLUMNS = (
    ("platforms", sa.Text()),
    ("artifact_types", sa.Text()),
    ("schedule", sa.String(length=120)),
    ("scheduled_at", sa.Float()),
    ("bandwidth", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("replication_rules") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    with op.batch_alter_table("replication_runs") as batch:
        batch.add_column(sa.Column("notes", sa.Text(), nullable=True))
    op.create_table(
        "cache_tag_lists",
        sa.Column("repository", sa.String(length=255), primary_key=True),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cache_tag_lists")
    with op.batch_alter_table("replication_runs") as batch:
        batch.drop_column("notes")
    with op.batch_alter_table("replication_rules") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
