"""The domain-event outbox, consumer cursors, and audit rows keyed by the event they came from.

Revision ID: 0007_outbox
Revises: 0006_jobs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_outbox"
down_revision = "0006_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=True),
        sa.Column("actor_kind", sa.String(length=16), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("repository", sa.String(length=255), nullable=True),
        sa.Column("digest", sa.String(length=200), nullable=True),
        sa.Column("tag", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
    )
    op.create_index("ix_events_repository", "events", ["repository", "id"])
    op.create_table(
        "event_cursors",
        sa.Column("consumer", sa.String(length=64), primary_key=True),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    # An adopted pre-migration database was created from today's table list: it may have them.
    inspector = sa.inspect(op.get_bind())
    if "event_id" not in {c["name"] for c in inspector.get_columns("audit_events")}:
        op.add_column("audit_events", sa.Column("event_id", sa.BigInteger(), nullable=True))
    if "ux_audit_event" not in {i["name"] for i in inspector.get_indexes("audit_events")}:
        op.create_index("ux_audit_event", "audit_events", ["event_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_audit_event", table_name="audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("event_id")
    op.drop_table("event_cursors")
    op.drop_index("ix_events_repository", table_name="events")
    op.drop_table("events")
