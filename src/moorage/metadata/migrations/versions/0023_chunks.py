"""Chunk-level dedup: chunks, blob recipes, and a blob's layout (whole | chunked).

Revision ID: 0023_chunks
Revises: 0022_replication_filters
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023_chunks"
down_revision = "0022_replication_filters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite has it for a NOT NULL column with a default): batch mode would
    # copy and drop `blobs`, which the foreign keys of a database with content refuse.
    op.add_column("blobs", sa.Column("layout", sa.String(length=16), nullable=False,
                                     server_default="whole"))
    op.create_table(
        "chunks",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("pack_key", sa.String(length=300), nullable=False),
        sa.Column("pack_offset", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_chunks_pack_key", "chunks", ["pack_key"])
    op.create_table(
        "blob_chunks",
        sa.Column("digest", sa.String(length=200), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("chunk_id", sa.String(length=64), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
    )
    op.create_index("ix_blob_chunks_chunk_id", "blob_chunks", ["chunk_id"])
    op.create_index("ix_blob_chunks_offset", "blob_chunks", ["digest", "offset"])


def downgrade() -> None:
    op.drop_index("ix_blob_chunks_offset", "blob_chunks")
    op.drop_index("ix_blob_chunks_chunk_id", "blob_chunks")
    op.drop_table("blob_chunks")
    op.drop_index("ix_chunks_pack_key", "chunks")
    op.drop_table("chunks")
    # SQLite (3.35+) drops a plain column in place; batch mode would copy and drop `blobs`,
    # which the foreign keys of a database with content refuse.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE blobs DROP COLUMN layout")
    else:
        op.drop_column("blobs", "layout")
