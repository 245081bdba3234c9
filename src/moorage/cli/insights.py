"""`moorage insights [run] REPO:TAG|REPO@DIGEST`: an image's size insights (bytes per layer,
largest files, wasted and shared bytes, advice), computed by the `insights` job."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import (
    Config,
    Database,
    DataDir,
    JsonFlag,
    Storage,
    Target,
    call,
    fail,
    open_existing,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from ..bootstrap import Registry

RUN = "run"
SHOWN_FILES = 10
POLL_SECONDS = 0.5


def insights(
    first: Annotated[str, typer.Argument(metavar="[run] REFERENCE",
                                         help="REPO:TAG or REPO@DIGEST; `run REF` queues the "
                                              "job again and returns")],
    second: Annotated[str | None, typer.Argument(hidden=True)] = None,
    platform: Annotated[str | None, typer.Option(
        "--platform", help="os/arch[/variant] of an index's image [default linux/amd64]")] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="seconds to wait for the job when no report exists yet")] = 600.0,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Print the image's size insights; without a report yet, queue the job and wait for it (the
    server's workers or `moorage worker` run it)."""
    rerun = first == RUN and second is not None
    reference = second if rerun else first
    if reference is None or (second is not None and not rerun):
        fail("usage: moorage insights [run] REPO:TAG|REPO@DIGEST", 2)
    registry = open_existing(Target(data_dir, database, storage, config).settings())
    service = registry.insights
    repository, digest = call(service.resolve, reference, platform)
    if rerun:
        job = service.queue(repository, digest, again=True)
        typer.echo(f"{repository}@{digest}: insights queued (job {job.id})")
        return
    report = service.get(repository, digest)
    if report is None:
        report = _wait(registry, repository, digest, timeout)
    if json_output:
        print_json(report)
        return
    _print(report)


def _wait(registry: Registry, repository: str, digest: str, timeout: float) -> dict[str, Any]:
    from rich.console import Console

    service = registry.insights
    job = service.queue(repository, digest)
    deadline = time.monotonic() + timeout
    with Console(stderr=True).status(f"computing insights of {repository}@{digest[:19]} "
                                     f"(job {job.id})"):
        while time.monotonic() < deadline:
            report = service.get(repository, digest)
            if report is not None:
                return report
            job = registry.jobs.get(job.id)
            if job.state == "failed":
                fail(f"the insights job {job.id} failed: {job.last_error}")
            if job.state == "done":  # e.g. a pull-through cache namespace: nothing stored
                fail(f"no insights for {repository}@{digest}: {job.last_error or 'skipped'}")
            time.sleep(POLL_SECONDS)
    fail(f"no insights report after {timeout:g} s (job {job.id} is {job.state}): is the "
         "server or `moorage worker` running?")


def _print(report: dict[str, Any]) -> None:
    from ..insights.advice import human

    head = f"{report['repository']}@{report['digest']}: {report['status']}"
    if report.get("error"):
        head += f" ({report['error']})"
    typer.echo(head)
    if report["status"] == "index":
        print_table(["PLATFORM", "DIGEST"],
                    [[m["platform"], m["digest"]] for m in report.get("manifests", [])])
        return
    if report["status"] != "done":
        return
    t = report["totals"]
    typer.echo(f"{t['layers']} layers, {human(t['compressed'])} compressed, "
               f"{human(t['uncompressed'])} uncompressed, {t['files']} files; "
               f"{human(t['wasted'])} deleted or overwritten by later layers; "
               f"{human(report['shared']['bytes'])} in layers other images share"
               + (" (truncated: more paths than insights_max_paths)"
                  if report["truncated"] else ""))
    print_table(["#", "LAYER", "COMPRESSED", "UNCOMPRESSED", "FILES", "WASTED", "SHARED WITH"],
                [[x["index"], x["digest"][:19], human(x["compressed"]),
                  human(x["uncompressed"]), x["files"], human(x["wasted"]),
                  x["shared_with"] or "-"] for x in report["layers"]])
    print_table(["SIZE", "LAYER", "LARGEST FILES"],
                [[human(f["size"]), f["layer"], f["path"]]
                 for f in report["largest_files"][:SHOWN_FILES]])
    for kind in ("deleted", "overwritten", "duplicates"):
        part = report[kind]
        if part["files"]:
            typer.echo(f"{kind}: {part['files']} files, {human(part['bytes'])}")
    if report["advice"]:
        typer.echo("advice:")
        for item in report["advice"]:
            typer.echo(f"  - {item['message']}")
    else:
        typer.echo("advice: none")
