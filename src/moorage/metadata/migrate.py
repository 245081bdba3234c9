"""Schema versions: run the Alembic migrations and check a database is at the code's revision."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (and the Mako and Pygments it pulls in) is imported only when a migration step runs:
# a serving process that merely names SchemaNotCurrent must not carry it.

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# The revision whose tables `metadata.create_all` made before migrations existed: an embedded
# database from then is adopted at this revision instead of being created again.
BASELINE_REVISION = "0001"


class SchemaNotCurrent(RuntimeError):
    """The database is not at the revision this code needs; the message says what to run."""


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The revision the code expects (the newest migration)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads {heads}; add a merge revision")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head", replay: bool = False
            ) -> tuple[str | None, str]:
    """Migrate the database to `revision`; returns (revision before, revision after).

    A new, empty database gets the declared schema at once, stamped at the head: what
    replaying every migration builds (tests/metadata compare the two), in a fraction of the
    time every fresh data dir and test server spent on it. `replay` runs the migrations."""
    from alembic import command

    before = current_revision(engine)
    with engine.begin() as conn:
        config = _config()
        config.attributes["connection"] = conn
        if before is None and _has_legacy_tables(conn):
            command.stamp(config, BASELINE_REVISION)
        elif before is None and revision == "head" and not replay and _is_empty(conn):
            from .schema import metadata

            metadata.create_all(conn)
            command.stamp(config, "head")
            return before, head_revision()
        command.upgrade(config, revision)
    return before, current_revision(engine) or ""


def check_current(engine: Engine) -> None:
    """Raise SchemaNotCurrent unless the database is at the head revision."""
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
    url = engine.url.render_as_string(hide_password=True)
    if current is None:
        state = "has no Moorage schema (it was never migrated)"
    else:
        state = f"is at schema revision {current}, this version of Moorage needs {head}"
    raise SchemaNotCurrent(
        f"the database {url} {state}; run `moorage db upgrade --database URL` first"
    )


def _is_empty(conn) -> bool:  # type: ignore[no-untyped-def]
    return not inspect(conn).get_table_names()


def _has_legacy_tables(conn) -> bool:  # type: ignore[no-untyped-def]
    return conn.dialect.name == "sqlite" and inspect(conn).has_table("repositories")
