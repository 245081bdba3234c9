"""Chunk pack intents: a pack being written, so a crash before its chunks commit frees it.

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


def downgrade() -> None:
    op.drop_index("ix_chunk_pack_intents_created_at", "chunk_pack_intents")
    op.drop_table("chunk_pack_intents")
