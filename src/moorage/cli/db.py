"""`moorage db upgrade | current`: the schema (upgrade is the one command besides serve that
creates a registry's database)."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import Config, Database, DataDir, Storage, Target, fail

db_app = typer.Typer(help="Database schema: migrate and inspect.", no_args_is_help=True)


def _database_url(target: Target, create: bool) -> str:
    """The registry's database URL; the embedded one's data dir is created only if `create`."""
    from ..metadata.engine import sqlite_url
    from .common import no_registry_message

    settings = target.settings()
    if settings.database_url:
        return settings.database_url
    if create:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    elif not (settings.data_dir / "moorage.db").is_file():
        fail(no_registry_message(settings, "no moorage.db"), 2)
    return sqlite_url(settings.data_dir.resolve())


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Run the schema migrations (safe to repeat; run once per upgrade, before starting nodes)."""
    from ..metadata.engine import make_engine
    from ..metadata.migrate import upgrade

    engine = make_engine(_database_url(Target(data_dir, database, storage, config), create=True))
    try:
        before, after = upgrade(engine, revision)
    except Exception as exc:  # noqa: BLE001 - report any migration failure plainly
        fail(f"migration failed: {exc}", 1)
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    if before == after:
        typer.echo(f"{url}: already at revision {after}")
    else:
        typer.echo(f"{url}: migrated from {before or 'empty'} to {after}")


@db_app.command("current")
def db_current(
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Print the database's schema revision and the one this version needs (exit 1 if behind)."""
    from ..metadata.engine import make_engine
    from ..metadata.migrate import current_revision, head_revision

    engine = make_engine(_database_url(Target(data_dir, database, storage, config), create=False))
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    typer.echo(f"current: {current or 'none'}\nneeded:  {head}")
    raise typer.Exit(0 if current == head else 1)
