"""What every command shares: the registry options, opening an existing registry, output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from ..bootstrap import Registry
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


def open_existing(settings: Settings) -> Registry:
    """The registry the options point at; exits 2 when there is none (nothing is created), 3
    when a shared database needs `moorage db upgrade` (see bootstrap.open_existing)."""
    from ..bootstrap import NoRegistry
    from ..bootstrap import open_existing as open_registry

    try:
        return open_registry(settings)
    except NoRegistry as exc:
        fail(exc.message, exc.exit_code)


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


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")]


@contextmanager
def progress_bar(quiet: bool = False) -> Iterator[Callable[[str, int, int | None], None]]:
    """A `(phase, done, total)` callback drawing a rich progress bar on stderr; silent when
    `quiet` or when stderr is not a terminal (logs and pipes get the final result only)."""
    import sys

    if quiet or not sys.stderr.isatty():
        yield lambda _phase, _done, _total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:

        def update(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update
