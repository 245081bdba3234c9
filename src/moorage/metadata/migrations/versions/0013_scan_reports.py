"""Scan reports: one per (repository, manifest digest), its status and findings.

Revision ID: 0013_scan_reports
Revises: 0012_models
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_scan_reports"
down_revision = "0012_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scan_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("queued_at", sa.Float(), nullable=False),
        sa.Column("scanned_at", sa.Float(), nullable=True),
        sa.Column("matched_at", sa.Float(), nullable=True),
        sa.Column("vulndb_version", sa.Float(), nullable=True),
        sa.Column("os", sa.Text(), nullable=True),
        sa.Column("packages", sa.Text(), nullable=False),
        sa.Column("vulnerabilities", sa.Text(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=False),
        sa.Column("model_findings", sa.Text(), nullable=False),
        sa.UniqueConstraint("repository", "digest", name="uq_scan_reports_manifest"),
    )
    op.create_index("ix_scan_reports_status", "scan_reports", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_scan_reports_status", table_name="scan_reports")
    op.drop_table("scan_reports")
