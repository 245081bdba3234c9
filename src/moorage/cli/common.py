"""What every command shares: the registry options, opening an existing registry, output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ..config import Settings

# The same four options on every command that touches registry data.
DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="data dir of the registry [env MOORAGE_DATA_DIR; default ./data]"),
]
Database = Annotated[
    str | None,
    typer.Option("--database", help="postgresql://… of a scale-out registry "
                 "[env MOORAGE_DATABASE_URL; default SQLite in the data dir]"),
]
Storage = Annotated[
    str | None,
    typer.Option("--storage", help="s3://bucket/prefix of a scale-out registry "
                 "[env MOORAGE_STORAGE_URL; default files in the data dir]"),
]
Config = Annotated[
    Path | None, typer.Option("--config", help="TOML file of settings [env MOORAGE_CONFIG]")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


@dataclass(frozen=True)
class Target:
    """Where a command finds the registry: the options as given (None: settings decide)."""

    data_dir: Path | None = None
    database: str | None = None
    storage: str | None = None
    config: Path | None = None

    def settings(self, **overrides: Any) -> Settings:
        """The Settings the server would use with these options (exit 2 when invalid)."""
        from ..config import Settings

        try:
            return Settings.from_env(data_dir=self.data_dir, database_url=self.database,
                                     storage_url=self.storage, config_file=self.config,
                                     **overrides)
        except ValueError as exc:
            fail(str(exc), 2)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def no_registry_message(settings: Settings, why: str) -> str:
    """The sentence a user sees when the options point at no registry."""
    where = (_safe_url(settings.database_url) if settings.database_url
             else str(settings.data_dir.resolve()))
    return (f"no Moorage registry in {where} ({why}): pass --data-dir DIR or --database URL "
            "(or set MOORAGE_DATA_DIR / MOORAGE_DATABASE_URL), "
            "or run 'moorage serve' once to create one")


def open_existing(settings: Settings) -> Engine:
    """The database of an existing registry; exits 2 when there is none (nothing is created).

    An embedded database that is merely behind is migrated, as `moorage serve` would; a shared
    one must be current (exit 3 with the command to run).
    """
    from sqlalchemy import inspect

    from ..metadata.engine import make_engine, sqlite_url
    from ..metadata.migrate import SchemaNotCurrent, check_current, upgrade

    if not settings.database_url:
        db_file = settings.data_dir / "moorage.db"
        if not db_file.is_file():
            fail(no_registry_message(settings, "no moorage.db"), 2)
        url = sqlite_url(settings.data_dir.resolve())
    else:
        url = settings.database_url
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    except Exception as exc:  # noqa: BLE001 - an unreachable database is reported, not traced
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        fail(f"cannot open the database {_safe_url(url)}: {reason}", 2)
    if "alembic_version" not in tables and "repositories" not in tables:
        engine.dispose()
        fail(no_registry_message(settings, "no Moorage schema in its database"), 2)
    try:
        upgrade(engine) if url.startswith("sqlite") else check_current(engine)
    except SchemaNotCurrent as exc:
        engine.dispose()
        fail(str(exc), 3)
    return engine


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as given, minus nothing secret
        return url.split("@")[-1]


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a service call; a RegistryError becomes `error: …` and exit code 1."""
    from ..oci.errors import RegistryError

    try:
        return fn(*args, **kwargs)
    except RegistryError as exc:
        fail(exc.message, 1)


def print_json(value: Any) -> None:
    """One line of JSON, times as RFC 3339."""
    from ..times import with_rfc3339

    typer.echo(json.dumps(with_rfc3339(value)))


def print_table(columns: list[str], rows: list[list[Any]], empty: str = "") -> None:
    """A table with a header row (rich); `empty` is printed when there are no rows."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    if not rows:
        if empty:
            typer.echo(empty)
        return
    table = Table(*columns, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  header_style="bold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    # A pipe or a CI log is not a terminal: never wrap or cut cells there.
    console = Console(width=max(200, _terminal_width()), soft_wrap=True)
    console.print(table, overflow="ignore", crop=False)


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((200, 24)).columns
