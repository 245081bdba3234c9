"""Upstream registries (credentials sealed) and pull-through cache namespaces, the times their
tags were last revalidated, and the leases of cold blob fetches.

Revision ID: 0015_cache
Revises: 0014_trust
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_cache"
down_revision = "0014_trust"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upstreams",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("auth", sa.String(length=16), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("ca_file", sa.Text(), nullable=True),
        sa.Column("insecure", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=True),
    )
    op.create_table(
        "cache_namespaces",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("namespace", sa.String(length=255), nullable=False, unique=True),
        sa.Column("upstream_id", sa.Integer(), sa.ForeignKey("upstreams.id"), nullable=False),
        sa.Column("revalidate", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "cache_tag_checks",
        sa.Column("repository", sa.String(length=255), primary_key=True),
        sa.Column("tag", sa.String(length=128), primary_key=True),
        sa.Column("digest", sa.String(length=200), nullable=False),
        sa.Column("checked_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "cache_fetches",
        sa.Column("key", sa.String(length=500), primary_key=True),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cache_fetches")
    op.drop_table("cache_tag_checks")
    op.drop_table("cache_namespaces")
    op.drop_table("upstreams")
