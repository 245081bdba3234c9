"""Trust entries: the public keys, x509 roots and keyless identities a namespace trusts.

Revision ID: 0014_trust
Revises: 0013_scan_reports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_trust"
down_revision = "0013_scan_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trust_entries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("algorithm", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("material", sa.Text(), nullable=False),
        sa.Column("identity", sa.String(length=255), nullable=True),
        sa.Column("issuer", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=True),
        sa.UniqueConstraint("namespace", "name", name="uq_trust_entries_namespace_name"),
    )


def downgrade() -> None:
    op.drop_table("trust_entries")
