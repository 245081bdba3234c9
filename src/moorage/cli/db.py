"""`moorage db upgrade | current`: the schema (upgrade is the one command besides serve that
creates a registry's database)."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import Config, Database, DataDir, Storage, Target, fail

db_app = typer.Typer(help="Database schema: migrate and inspect.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Run the schema migrations (safe to repeat; run once per upgrade, before starting nodes)."""
    from ..bootstrap import upgrade_database

    settings = Target(data_dir, database, storage, config).settings()
    try:
        url, before, after = upgrade_database(settings, revision)
    except Exception as exc:  # noqa: BLE001 - report any migration failure plainly
        fail(f"migration failed: {exc}", 1)
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
    from ..bootstrap import NoRegistry, database_revisions

    try:
        current, head = database_revisions(Target(data_dir, database, storage, config).settings())
    except NoRegistry as exc:
        fail(exc.message, exc.exit_code)
    typer.echo(f"current: {current or 'none'}\nneeded:  {head}")
    raise typer.Exit(0 if current == head else 1)
