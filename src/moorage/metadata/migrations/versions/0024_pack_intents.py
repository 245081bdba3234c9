"""Chunk pack intents (a pack being written, so a crash before its chunks commit frees it)
and blob extents (a recipe's bytes as merged runs of packs, what a GET reads).

Revision ID: 0024_pack_intents
Revises: 0023_chunks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_pack_intents"
down_revision = "0023_chunks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chunk_pack_intents",
        sa.Column("pack_key", sa.String(length=300), primary_key=True),
        sa.Column("upload", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_chunk_pack_intents_created_at", "chunk_pack_intents", ["created_at"])
    # Recipes recorded before have none: their reads fall back to the recipe itself.
    op.create_table(
        "blob_extents",
        sa.Column("digest", sa.String(length=200), primary_key=True),
        sa.Column("offset", sa.BigInteger(), primary_key=True),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("pack_key", sa.String(length=300), nullable=False),
        sa.Column("pack_offset", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("blob_extents")
    op.drop_index("ix_chunk_pack_intents_created_at", "chunk_pack_intents")
    op.drop_table("chunk_pack_intents")
