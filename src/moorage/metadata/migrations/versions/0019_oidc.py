"""OIDC workload identity: trusted issuers and their claim rules.

Revision ID: 0019_oidc
Revises: 0018_insights
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_oidc"
down_revision = "0018_insights"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oidc_issuers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("issuer", sa.String(length=500), nullable=False, unique=True),
        sa.Column("audience", sa.String(length=500), nullable=False),
        sa.Column("jwks_url", sa.Text(), nullable=True),
        sa.Column("jwks", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=True),
    )
    op.create_table(
        "oidc_rules",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("issuer_id", sa.Integer(), sa.ForeignKey("oidc_issuers.id",
                                                           ondelete="CASCADE"), nullable=False),
        sa.Column("claims", sa.Text(), nullable=False),
        sa.Column("permissions", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=True),
    )
    op.create_index("oidc_rules_issuer", "oidc_rules", ["issuer_id", "id"])


def downgrade() -> None:
    op.drop_index("oidc_rules_issuer", table_name="oidc_rules")
    op.drop_table("oidc_rules")
    op.drop_table("oidc_issuers")
