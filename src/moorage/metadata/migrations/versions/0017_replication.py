"""Replication rules (push to / pull from an upstream) and their runs.

Revision ID: 0017_replication
Revises: 0016_pull_policies
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_replication"
down_revision = "0016_pull_policies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replication_rules",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("upstream_id", sa.Integer(), sa.ForeignKey("upstreams.id"), nullable=False),
        sa.Column("repos", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("on_push", sa.Boolean(), nullable=False),
        sa.Column("delete_mirrors", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=True),
    )
    op.create_table(
        "replication_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rule_id", sa.Integer(), sa.ForeignKey("replication_rules.id",
                                                         ondelete="CASCADE"), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True, unique=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=300), nullable=True),
        sa.Column("manifests", sa.Integer(), nullable=False),
        sa.Column("blobs", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("mounted", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failures", sa.Text(), nullable=False),
        sa.Column("uploads", sa.Text(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
    )
    op.create_index("replication_runs_rule", "replication_runs", ["rule_id", "id"])


def downgrade() -> None:
    op.drop_index("replication_runs_rule", table_name="replication_runs")
    op.drop_table("replication_runs")
    op.drop_table("replication_rules")
