"""Offline vulnerability data: OSV records, the packages they affect, import times.

Revision ID: 0010_vulndb
Revises: 0009_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_vulndb"
down_revision = "0009_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vuln_records",
        sa.Column("id", sa.String(length=200), primary_key=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("aliases", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("modified", sa.Float(), nullable=False),
        sa.Column("published", sa.Float(), nullable=True),
        sa.Column("withdrawn", sa.Float(), nullable=True),
        sa.Column("imported_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "vuln_affected",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("record_id", sa.String(length=200),
                  sa.ForeignKey("vuln_records.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ecosystem", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("purl", sa.Text(), nullable=True),
        sa.Column("ranges", sa.Text(), nullable=False),
        sa.Column("versions", sa.Text(), nullable=False),
    )
    op.create_index("ix_vuln_affected_package", "vuln_affected", ["ecosystem", "name"])
    op.create_index("ix_vuln_affected_record", "vuln_affected", ["record_id"])
    op.create_table(
        "vuln_imports",
        sa.Column("ecosystem", sa.String(length=100), primary_key=True),
        sa.Column("imported_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("vuln_imports")
    op.drop_index("ix_vuln_affected_record", table_name="vuln_affected")
    op.drop_index("ix_vuln_affected_package", table_name="vuln_affected")
    op.drop_table("vuln_affected")
    op.drop_table("vuln_records")
