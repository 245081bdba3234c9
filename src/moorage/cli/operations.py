"""`moorage check | backup | restore`: verifying and saving a registry's data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import (
    Config,
    Database,
    DataDir,
    JsonFlag,
    Quiet,
    Storage,
    Target,
    call,
    fail,
    open_existing,
    print_json,
    progress_bar,
)

if TYPE_CHECKING:
    from ..operations.backup import BackupReport


def check(
    repair: Annotated[bool, typer.Option(
        "--repair", help="delete orphaned objects older than --grace; drop rows of missing "
        "blobs no manifest references")] = False,
    deep: Annotated[bool, typer.Option("--deep", help="re-hash every blob (reads all bytes)")
                    ] = False,
    grace: Annotated[str, typer.Option(
        help="objects younger than this are never judged (uploads being committed): 30m, 1h"
    )] = "1h",
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Verify metadata against storage (safe while the server runs); exit 1 on any finding."""
    from ..auth.identity import CLI
    from ..gc.collector import parse_duration

    try:
        grace_seconds = parse_duration(grace)
    except ValueError as exc:
        fail(str(exc), 2)
    reg = open_existing(Target(data_dir, database, storage, config).settings())
    with progress_bar(quiet) as progress:
        report = call(reg.integrity.run, CLI, deep=deep, repair=repair, grace=grace_seconds,
                      progress=progress)
    if json_output:
        print_json(report.as_dict())
    else:
        # One line each: digests and keys are too long for a table's columns.
        for f in report.findings:
            name = " ".join(part for part in (f.digest, f.key and f"[{f.key}]") if part)
            done = f" -> {f.repaired}" if f.repaired else (" -> not repaired" if repair else "")
            typer.echo(f"{f.kind:8} {name}: {f.detail}{done}")
        verdict = "clean" if not report.findings else (
            "repaired" if report.clean else f"{len(report.findings)} problem(s)")
        typer.echo(f"checked {report.blobs} blob rows and {report.objects} stored objects: "
                   f"{verdict}")
    raise typer.Exit(0 if (report.clean if repair else not report.findings) else 1)


def backup(
    directory: Annotated[Path, typer.Argument(help="new or empty directory to write")],
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Back up the embedded registry (SQLite + files) while it serves; PostgreSQL/S3: prints
    the procedure."""
    from ..operations.backup import BackupError
    from ..operations.backup import backup as run

    settings = Target(data_dir, database, storage, config).settings()
    if settings.is_scaled_out or settings.storage_url:
        from ..operations.backup import SCALE_OUT_PROCEDURE

        fail(SCALE_OUT_PROCEDURE, 2)
    reg = open_existing(settings)
    try:
        with progress_bar(quiet) as progress:
            report = run(settings, reg.blob_store, directory, progress)
    except BackupError as exc:
        fail(exc.message, exc.exit_code)
    finally:
        reg.close()
    _print_backup(report, json_output, "backed up")


def restore(
    directory: Annotated[Path, typer.Argument(help="a directory `moorage backup` wrote")],
    data_dir: Annotated[Path, typer.Option(
        "--data-dir", help="new or empty data dir to restore into")],
    json_output: JsonFlag = False,
    quiet: Quiet = False,
) -> None:
    """Restore a backup into a new data dir (its checksums verified first)."""
    from ..operations.backup import BackupError
    from ..operations.backup import restore as run

    try:
        with progress_bar(quiet) as progress:
            report = run(directory, data_dir, progress)
    except BackupError as exc:
        fail(exc.message, exc.exit_code)
    _print_backup(report, json_output, "restored")


def _print_backup(report: BackupReport, json_output: bool, done: str) -> None:
    from ..policy.quota import human_bytes

    if json_output:
        print_json(report.as_dict())
        return
    counts = report.counts
    typer.echo(f"{done} {counts['repositories']} repositories, {counts['manifests']} "
               f"manifests, {counts['tags']} tags, {counts['blobs']} blobs "
               f"({human_bytes(report.blob_bytes)}; {report.linked} hard-linked, "
               f"{report.copied} copied) in {report.directory}")
    if report.dropped:
        typer.echo(f"left out {len(report.dropped)} blob(s) collected while the backup ran")


secrets_app = typer.Typer(help="The key sealing stored secrets: rotate.", no_args_is_help=True)


@secrets_app.command("rotate")
def secrets_rotate(
    new_key_file: Annotated[Path, typer.Option(
        "--new-key-file", help="file holding the new key: base64 of 32 random bytes "
        "(`openssl rand -base64 32 > F`)")],
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Re-seal every stored secret (upstream credentials, webhook secrets) under a new key."""
    from ..auth.identity import CLI
    from ..auth.sealing import NoSecretsKey, parse_key

    try:
        new_key = parse_key(new_key_file.read_text())
    except (OSError, ValueError) as exc:
        fail(f"{new_key_file}: {exc}", 2)
    reg = open_existing(Target(data_dir, database, storage, config).settings())
    try:
        report = call(reg.secrets_rotation.rotate, CLI, new_key)
    except NoSecretsKey as exc:
        fail(exc.message, 2)
    finally:
        reg.close()
    counts = ", ".join(f"{n} {table}" for table, n in report.resealed.items())
    typer.echo(f"re-sealed {counts} (sealed values, by table) under the new key")
    if report.key_file:
        typer.echo(f"the new key is in {report.key_file}")
    if report.next_steps:
        typer.echo(f"next: {report.next_steps}")
