"""ML models: the index of model artifacts, their files and the tensors of their weights.

Revision ID: 0012_models
Revises: 0011_jobs_key_index
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_models"
down_revision = "0011_jobs_key_index"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=400)),
        sa.Column("family", sa.String(length=200)),
        sa.Column("version", sa.String(length=200)),
        sa.Column("architecture", sa.String(length=200)),
        sa.Column("params", sa.Float()),
        sa.Column("precision", sa.String(length=100)),
        sa.Column("quantization", sa.String(length=100)),
        sa.Column("format", sa.String(length=100)),
        sa.Column("license", sa.String(length=400)),
        sa.Column("annotations", sa.Text(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("training_run", sa.String(length=400)),
        sa.Column("training_run_url", sa.Text()),
        sa.Column("dataset_digest", sa.String(length=200)),
        sa.Column("base_digest", sa.String(length=200)),
        sa.Column("base_name", sa.String(length=400)),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("parse_error", sa.Text()),
        sa.Column("indexed_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("repository", "digest", name="uq_models_repository_digest"),
    )
    op.create_index("ix_models_digest", "models", ["digest"])
    op.create_index("ix_models_base_digest", "models", ["base_digest"])
    op.create_table(
        "model_files",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("model_id", _ID, sa.ForeignKey("models.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("layer_digest", sa.String(length=200), nullable=False),
        sa.Column("layer_offset", sa.BigInteger()),
        sa.Column("media_type", sa.String(length=255), nullable=False),
    )
    op.create_index("ix_model_files_model", "model_files", ["model_id"])
    op.create_table(
        "model_tensors",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("file_id", _ID, sa.ForeignKey("model_files.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("dtype", sa.String(length=32), nullable=False),
        sa.Column("shape", sa.Text(), nullable=False),
        sa.Column("blob_offset", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_model_tensors_file", "model_tensors", ["file_id"])


def downgrade() -> None:
    op.drop_index("ix_model_tensors_file", table_name="model_tensors")
    op.drop_table("model_tensors")
    op.drop_index("ix_model_files_model", table_name="model_files")
    op.drop_table("model_files")
    op.drop_index("ix_models_base_digest", table_name="models")
    op.drop_index("ix_models_digest", table_name="models")
    op.drop_table("models")
