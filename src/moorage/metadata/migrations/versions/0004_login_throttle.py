"""Login throttle per (account, address): login_failures gains last_failure and locked_until.

The counters are transient (at most an hour of failed logins), so the table is recreated rather
than altered: that works the same on SQLite and PostgreSQL and on databases of any age.

Revision ID: 0004_login_throttle
Revises: 0003_usage_totals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_login_throttle"
down_revision = "0003_usage_totals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("login_failures")
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure", sa.Float(), nullable=False),
        sa.Column("locked_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("login_failures")
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
