"""The `moorage` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__

app = typer.Typer(help="Moorage: an OCI registry for machine-learning teams.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Moorage: an OCI container registry for models and their environments."""


@app.command()
def serve(
    listen: Annotated[
        Optional[str], typer.Option(help="HOST:PORT to listen on [env MOORAGE_LISTEN; default 127.0.0.1:5000]")
    ] = None,
    data_dir: Annotated[
        Optional[Path], typer.Option(help="where metadata and blobs live [env MOORAGE_DATA_DIR; default ./data]")
    ] = None,
    workers: Annotated[
        Optional[int], typer.Option(help="worker processes sharing the port [default: CPU count]")
    ] = None,
    allow_sparse: Annotated[
        Optional[bool],
        typer.Option("--allow-sparse", help="accept manifests whose blobs/children are absent"),
    ] = None,
    no_fsync: Annotated[
        Optional[bool], typer.Option("--no-fsync", help="skip fsync on commit (faster, less durable)")
    ] = None,
    database: Annotated[
        Optional[str],
        typer.Option(help="postgresql://user:pass@host/db for scale-out [env MOORAGE_DATABASE_URL; default SQLite in --data-dir]"),
    ] = None,
    storage: Annotated[
        Optional[str],
        typer.Option(help="s3://bucket/prefix for scale-out; endpoint and keys from AWS_* [env MOORAGE_STORAGE_URL; default files in --data-dir]"),
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="TOML file of settings [env MOORAGE_CONFIG]")
    ] = None,
) -> None:
    """Run the registry (SQLite + filesystem under --data-dir; no configuration needed)."""
    from .config import Settings
    from .server import serve as run

    try:
        settings = Settings.from_env(
            listen=listen,
            data_dir=data_dir,
            workers=workers,
            allow_sparse=allow_sparse,
            fsync=False if no_fsync else None,
            database_url=database,
            storage_url=storage,
            config_file=config,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(run(settings))


db_app = typer.Typer(help="Database schema: migrate and inspect.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _database_url(database: str | None, data_dir: Path | None, config: Path | None) -> str:
    from .config import Settings
    from .metadata.engine import sqlite_url

    try:
        settings = Settings.from_env(database_url=database, data_dir=data_dir, config_file=config)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if settings.database_url:
        return settings.database_url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return sqlite_url(settings.data_dir.resolve())


_DB_OPT = typer.Option(help="database URL [env MOORAGE_DATABASE_URL; default SQLite in --data-dir]")


@db_app.command("upgrade")
def db_upgrade(
    database: Annotated[Optional[str], _DB_OPT] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="data dir of the embedded SQLite database")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML file of settings")] = None,
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
) -> None:
    """Run the schema migrations (safe to repeat; run once per upgrade, before starting nodes)."""
    from .metadata.engine import make_engine
    from .metadata.migrate import upgrade

    engine = make_engine(_database_url(database, data_dir, config))
    try:
        before, after = upgrade(engine, revision)
    except Exception as exc:
        typer.echo(f"error: migration failed: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    if before == after:
        typer.echo(f"{url}: already at revision {after}")
    else:
        typer.echo(f"{url}: migrated from {before or 'empty'} to {after}")


@db_app.command("current")
def db_current(
    database: Annotated[Optional[str], _DB_OPT] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="data dir of the embedded SQLite database")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML file of settings")] = None,
) -> None:
    """Print the database's schema revision and the one this version needs (exit 1 if behind)."""
    from .metadata.engine import make_engine
    from .metadata.migrate import current_revision, head_revision

    engine = make_engine(_database_url(database, data_dir, config))
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    typer.echo(f"current: {current or 'none'}\nneeded:  {head}")
    raise typer.Exit(0 if current == head else 1)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)
