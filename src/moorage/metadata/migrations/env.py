"""Alembic environment: runs on the connection `moorage.metadata.migrate` hands over."""

from __future__ import annotations

from alembic import context

from moorage.metadata.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through moorage.metadata.migrate
    raise RuntimeError("run migrations with `moorage db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place: batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
