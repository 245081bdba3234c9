"""`moorage replication add | list | remove | run | status | history`: rules that copy
repositories to (`--push-to`) or from (`--pull-from`) an upstream registry."""

from __future__ import annotations

from typing import Annotated, Any

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

replication_app = typer.Typer(help="Replication rules: copy repositories to or from an upstream.",
                              no_args_is_help=True)


def _registry(data_dir: Any, database: Any, storage: Any, config: Any) -> Any:
    return open_existing(Target(data_dir, database, storage, config).settings())


def _when(ts: float | None) -> str:
    from ..times import rfc3339

    return rfc3339(ts) or ""


@replication_app.command("add")
def replication_add(
    name: Annotated[str, typer.Argument(help="the rule's name")],
    push_to: Annotated[str | None, typer.Option(help="the upstream our repositories go to")] = None,
    pull_from: Annotated[str | None, typer.Option(
        help="the upstream whose repositories are mirrored here")] = None,
    repos: Annotated[str, typer.Option(
        help="comma-separated repository globs ('ml/**'; names for --pull-from)")] = "",
    tags: Annotated[str | None, typer.Option(help="comma-separated tag globs ('v*')")] = None,
    on_push: Annotated[bool, typer.Option(
        "--on-push", help="replicate each push as it happens (--push-to)")] = False,
    delete_mirrors: Annotated[bool, typer.Option(
        "--delete-mirrors", help="also delete at the target what was deleted here")] = False,
    platform: Annotated[str | None, typer.Option(
        help="comma-separated os/arch[/variant] an index is copied for (linux/amd64)")] = None,
    artifact_type: Annotated[str | None, typer.Option(
        help="comma-separated artifact (or config) media type globs to copy")] = None,
    schedule: Annotated[str | None, typer.Option(
        help="a five-field cron expression (UTC) a run is queued on ('0 3 * * *')")] = None,
    bandwidth: Annotated[str | None, typer.Option(
        help="at most this rate for a run's transfers together (200MB/s, 50MiB/s)")] = None,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Add a replication rule (`moorage replication run NAME` starts it)."""
    from ..auth.identity import CLI

    if bool(push_to) == bool(pull_from):
        fail("give one of --push-to UPSTREAM or --pull-from UPSTREAM", 2)
    if not repos:
        fail("--repos is required", 2)
    direction, upstream = ("push", push_to) if push_to else ("pull", pull_from)
    assert upstream is not None
    reg = _registry(data_dir, database, storage, config)
    row = call(reg.replication.add, CLI, name, direction, upstream, repos, tags, on_push,
               delete_mirrors, platform, artifact_type, schedule, bandwidth)
    if json_output:
        print_json(row)
    else:
        arrow = "→" if direction == "push" else "←"
        typer.echo(f"replication {row['name']}: {row['repos']} {arrow} {row['upstream']} "
                   f"(tags {row['tags'] or '*'}{', on push' if row['on_push'] else ''}"
                   + "".join(f", {k} {row[k]}" for k in ("platforms", "artifact_types",
                                                          "schedule", "bandwidth") if row[k])
                   + ")")


@replication_app.command("list")
def replication_list(
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Every replication rule."""
    from ..auth.identity import CLI

    rows = call(_registry(data_dir, database, storage, config).replication.list_rules, CLI)
    if json_output:
        print_json({"rules": rows})
        return
    print_table(["NAME", "DIRECTION", "UPSTREAM", "REPOS", "TAGS", "ON PUSH", "SCHEDULE"],
                [[r["name"], r["direction"], r["upstream"], r["repos"], r["tags"] or "*",
                  "yes" if r["on_push"] else "no", r["schedule"] or ""] for r in rows],
                empty="no replication rules")


@replication_app.command("remove")
def replication_remove(
    name: str,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Forget a rule and its run history."""
    from ..auth.identity import CLI

    call(_registry(data_dir, database, storage, config).replication.remove, CLI, name)
    typer.echo(f"removed replication rule {name}")


@replication_app.command("run")
def replication_run(
    name: str,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Queue a run of the rule (a run already queued or running is not doubled)."""
    from ..auth.identity import CLI

    job, created = call(_registry(data_dir, database, storage, config).replication.run, CLI,
                        name)
    if json_output:
        print_json({"job": job.id, "created": created, "state": job.state})
    elif created:
        typer.echo(f"queued replication run of {name}: job {job.id}")
    else:
        typer.echo(f"a run of {name} is {job.state} already: job {job.id}")


@replication_app.command("status")
def replication_status(
    name: str,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """The rule, its active run and its last run."""
    from ..auth.identity import CLI

    st = call(_registry(data_dir, database, storage, config).replication.status, CLI, name)
    if json_output:
        print_json(st)
        return
    rule, last = st["rule"], st["last_run"]
    typer.echo(f"{rule['name']}: {rule['direction']} {rule['repos']} with {rule['upstream']}")
    typer.echo(f"active: job {st['active_job']} ({st['active_state']})" if st["active_job"]
               else "active: none")
    if last is None:
        typer.echo("last run: never")
    else:
        typer.echo(f"last run: {last['state']} {_when(last['started_at'])}: "
                   f"{last['manifests']} manifests, {last['blobs']} blobs sent, "
                   f"{last['skipped']} skipped, {last['mounted']} mounted, {last['bytes']} bytes, "
                   f"{last['deleted']} tags deleted"
                   + (f"; error: {last['error']}" if last["error"] else ""))
        for note in last["notes"]:
            typer.echo(f"note: {note}")


@replication_app.command("history")
def replication_history(
    name: str,
    limit: Annotated[int, typer.Option(help="at most this many runs")] = 20,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """The rule's runs, newest first, with every failure and its cause."""
    from ..auth.identity import CLI

    runs = call(_registry(data_dir, database, storage, config).replication.history, CLI, name,
                limit)
    if json_output:
        print_json({"runs": [{k: v for k, v in r.items() if k != "uploads"} for r in runs]})
        return
    print_table(["RUN", "STATE", "TRIGGER", "STARTED", "FINISHED", "MANIFESTS", "BLOBS",
                 "BYTES", "FAILURES"],
                [[r["id"], r["state"], r["trigger"] or "", _when(r["started_at"]),
                  _when(r["finished_at"]), r["manifests"], r["blobs"], r["bytes"],
                  "; ".join(f["error"] for f in r["failures"])] for r in runs],
                empty="no runs")
