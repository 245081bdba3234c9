"""`moorage check | backup | restore`: verifying and saving a registry's data."""

from __future__ import annotations

from typing import Annotated

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
