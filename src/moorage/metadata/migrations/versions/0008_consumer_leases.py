"""Consumer leases on the event cursors, the events' dead letters; the unused lifecycle_leases
table goes (schedules are jobs since 0006).

Revision ID: 0008_consumer_leases
Revises: 0007_outbox
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_consumer_leases"
down_revision = "0007_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("event_cursors") as batch:
        batch.add_column(sa.Column("holder", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.Float(), nullable=True))
    op.create_table(
        "event_dead_letters",
        sa.Column("consumer", sa.String(length=64), primary_key=True),
        sa.Column("event_id", sa.BigInteger(), primary_key=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=True),
        sa.Column("digest", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failed_at", sa.Float(), nullable=False),
    )
    op.drop_table("lifecycle_leases")


def downgrade() -> None:
    op.create_table(
        "lifecycle_leases",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
    )
    op.drop_table("event_dead_letters")
    with op.batch_alter_table("event_cursors") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("holder")
