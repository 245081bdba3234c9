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
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(run(settings))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)
