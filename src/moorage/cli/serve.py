"""`moorage serve`: run the registry (it creates the data dir and database when absent)."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import Config, Database, DataDir, Storage, Target


def serve(
    listen: Annotated[
        str | None,
        typer.Option(help="HOST:PORT to listen on [env MOORAGE_LISTEN; default 127.0.0.1:5000]"),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="worker processes sharing the port [default: CPU count]")
    ] = None,
    allow_sparse: Annotated[
        bool | None,
        typer.Option("--allow-sparse", help="accept manifests whose blobs/children are absent"),
    ] = None,
    no_fsync: Annotated[
        bool | None, typer.Option("--no-fsync", help="skip fsync on commit (faster, less durable)")
    ] = None,
    no_auth: Annotated[
        bool | None,
        typer.Option("--no-auth", help="run an OPEN registry: anyone may push, pull, delete"),
    ] = None,
    no_jobs: Annotated[
        bool | None,
        typer.Option("--no-jobs", help="run no background jobs here (leave them to "
                     "`moorage worker`) [env MOORAGE_JOBS_IN_SERVER=0]"),
    ] = None,
    tls_cert: Annotated[
        str | None,
        typer.Option(help="PEM certificate chain: serve HTTPS (reloaded on SIGHUP) "
                     "[env MOORAGE_TLS_CERT_FILE]"),
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option(help="PEM private key of --tls-cert [env MOORAGE_TLS_KEY_FILE]")
    ] = None,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Run the registry (SQLite + filesystem under --data-dir; no configuration needed)."""
    from ..server import exec_serve as run

    settings = Target(data_dir, database, storage, config).settings(
        listen=listen,
        workers=workers,
        allow_sparse=allow_sparse,
        fsync=False if no_fsync else None,
        auth=False if no_auth else None,
        jobs_in_server=False if no_jobs else None,
        tls_cert_file=tls_cert,
        tls_key_file=tls_key,
    )
    raise typer.Exit(run(settings))
