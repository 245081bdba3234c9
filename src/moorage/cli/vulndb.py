"""`moorage vulndb import | status | match`: the offline vulnerability database (OSV data)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

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
    print_table,
    progress_bar,
)

vulndb_app = typer.Typer(help="Offline vulnerability data (OSV): import, status, match.",
                         no_args_is_help=True)
PROGRESS_FROM = 5000  # smaller imports print no progress line
PROGRESS_EVERY = 2.0  # seconds between progress lines


def _vulndb(target: Target) -> Any:
    return open_existing(target.settings()).vulndb


def _age(ts: float | None) -> str:
    if ts is None:
        return "never"
    seconds = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


@vulndb_app.command("import")
def import_(
    sources: Annotated[list[str], typer.Argument(
        help="OSV all.zip exports, directories of OSV JSON files, JSON files, or oci://REPO:TAG "
             "(an OSV data artifact in this registry, see `vulndb publish`)")],
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Import OSV records; re-importing updates records whose `modified` is newer. Exits 1 when
    a path was refused as a whole (the other paths are imported)."""
    from ..scan.osv_oci import oci_reference
    from ..scan.vulndb import ImportReport, SourceError

    last = [time.monotonic()]
    interactive = sys.stderr.isatty() and not quiet

    refs = [r for r in map(oci_reference, sources) if r is not None]
    paths = [Path(s) for s in sources if oci_reference(s) is None]
    if refs and paths:
        fail("import paths or one oci://REPO:TAG, not both at once", 2)
    if len(refs) > 1:
        fail("import one oci://REPO:TAG at a time", 2)
    def reporter(bar: Any) -> Any:
        def progress(report: ImportReport) -> None:
            if interactive:
                bar("records read", report.read, None)
            elif (not quiet and report.read >= PROGRESS_FROM
                  and time.monotonic() - last[0] >= PROGRESS_EVERY):
                # A log or pipe gets a line now and then instead of a bar.
                last[0] = time.monotonic()
                typer.echo(f"... {report.read} records read", err=True)

        return progress

    if refs:
        registry = open_existing(Target(data_dir, database, storage, config).settings())
        try:
            with progress_bar(quiet) as bar:
                report, digest = call(registry.osv_artifacts.import_ref, refs[0], reporter(bar))
        except SourceError as exc:
            fail(str(exc), 1)
        typer.echo(f"imported {refs[0]}@{digest}", err=True)
        _report(report, json_output)
        return
    service = _vulndb(Target(data_dir, database, storage, config))
    try:
        with progress_bar(quiet) as bar:
            report = service.import_paths(paths, progress=reporter(bar))
    except SourceError as exc:
        fail(str(exc), 1)
    _report(report, json_output)


def _report(report: Any, json_output: bool) -> None:
    """Print an import report (a table, or JSON); exit 1 when a source was refused."""
    if json_output:
        print_json(report.to_dict())
        if report.refused:
            raise typer.Exit(1)
        return
    print_table(["ECOSYSTEM", "ADDED", "UPDATED", "UNCHANGED", "SKIPPED"],
                [[eco, c.added, c.updated, c.unchanged, c.skipped]
                 for eco, c in sorted(report.ecosystems.items())],
                empty="no records found")
    for problem in report.problems:
        typer.echo(f"skipped {problem.origin}: {problem.reason}", err=True)
    if report.problem_count > len(report.problems):
        typer.echo(f"... and {report.problem_count - len(report.problems)} more skipped",
                   err=True)
    for problem in report.refused:
        typer.echo(f"error: refused {problem.origin}: {problem.reason}", err=True)
    sys.stdout.flush()
    if report.refused:
        raise typer.Exit(1)


@vulndb_app.command("publish")
def publish(
    paths: Annotated[list[Path], typer.Argument(help="OSV all.zip exports or JSON files")],
    ref: Annotated[str, typer.Argument(help="REPO:TAG to push the OSV data artifact to")],
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Push OSV files as one OCI artifact (application/vnd.osv.data.v1), for other registries
    to replicate and `vulndb import oci://REPO:TAG`."""
    import asyncio

    from ..scan.vulndb import SourceError

    registry = open_existing(Target(data_dir, database, storage, config).settings())
    try:
        digest = call(lambda: asyncio.run(registry.osv_artifacts.publish(paths, ref)))
    except SourceError as exc:
        fail(str(exc), 1)
    typer.echo(f"published {ref}@{digest}")


@vulndb_app.command("status")
def status(
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """List the ecosystems held: records, newest `modified`, when imported."""
    from ..times import human, rfc3339

    rows = _vulndb(Target(data_dir, database, storage, config)).status()
    if json_output:
        print_json({"ecosystems": [{**s.to_dict(), "newest_modified": rfc3339(s.newest_modified)}
                                   for s in rows]})
        return
    print_table(["ECOSYSTEM", "RECORDS", "WITHDRAWN", "NEWEST MODIFIED", "IMPORTED"],
                [[s.ecosystem, s.records, s.withdrawn, human(s.newest_modified, "-"),
                  _age(s.imported_at)] for s in rows],
                empty="no vulnerability data: run 'moorage vulndb import PATH...'")


@vulndb_app.command("match")
def match(
    ecosystem: Annotated[str, typer.Argument(help="OSV ecosystem, e.g. Debian:12, PyPI, npm")],
    name: Annotated[str, typer.Argument(help="package name (a distribution's source name)")],
    version: Annotated[str, typer.Argument(help="installed version")],
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Print the vulnerabilities affecting one package version (a debugging aid)."""
    findings = _vulndb(Target(data_dir, database, storage, config)).match(ecosystem, name,
                                                                            version)
    if json_output:
        print_json({"findings": [f.to_dict() for f in findings]})
        return
    print_table(["ID", "ALIASES", "SEVERITY", "SCORE", "FIXED", "SUMMARY"],
                [[f.id, ",".join(f.aliases), f.severity or "-",
                  "-" if f.score is None else f.score, f.fixed or "-", f.summary[:80]]
                 for f in findings],
                empty=f"no known vulnerabilities for {name} {version} in {ecosystem}")
