"""Usage totals: per-namespace content reference counts and byte totals, backfilled.

Revision ID: 0003_usage_totals
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_usage_totals"
down_revision = "0002"
branch_labels = None
depends_on = None


def _namespace(dialect: str, column: str) -> str:
    """SQL for the first path component of a repository name."""
    if dialect == "postgresql":
        return f"split_part({column}, '/', 1)"
    return (f"CASE WHEN instr({column}, '/') > 0 "
            f"THEN substr({column}, 1, instr({column}, '/') - 1) ELSE {column} END")


def upgrade() -> None:
    op.create_table(
        "namespace_content",
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("refs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "kind", "digest"),
    )
    op.create_index("ix_namespace_content_digest", "namespace_content", ["digest"])
    op.create_table(
        "namespace_usage",
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("namespace"),
    )
    # Backfill with the definition the quota check used before: distinct blob bytes referenced
    # by the namespace's manifests plus distinct manifest bytes (shared content counts once).
    ns = _namespace(op.get_bind().dialect.name, "p.name")
    op.execute(
        "INSERT INTO namespace_content (namespace, kind, digest, size, refs) "
        f"SELECT {ns}, 'blob', r.digest, MAX(COALESCE(b.size, 0)), COUNT(*) "
        "FROM manifest_references r "
        "JOIN manifests m ON m.id = r.manifest_id "
        "JOIN repositories p ON p.id = m.repository_id "
        "LEFT JOIN blobs b ON b.digest = r.digest "
        f"WHERE r.kind = 'blob' GROUP BY {ns}, r.digest"
    )
    op.execute(
        "INSERT INTO namespace_content (namespace, kind, digest, size, refs) "
        f"SELECT {ns}, 'manifest', m.digest, MAX(m.size), COUNT(*) "
        "FROM manifests m JOIN repositories p ON p.id = m.repository_id "
        f"GROUP BY {ns}, m.digest"
    )
    op.execute(
        "INSERT INTO namespace_usage (namespace, bytes) "
        "SELECT namespace, SUM(size) FROM namespace_content GROUP BY namespace"
    )


def downgrade() -> None:
    op.drop_table("namespace_usage")
    op.drop_index("ix_namespace_content_digest", table_name="namespace_content")
    op.drop_table("namespace_content")
