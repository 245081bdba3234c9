"""`moorage gc | retention | immutability | quota | tag`: cleaning up while the server runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

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

if TYPE_CHECKING:
    from ..auth.identity import Principal
    from ..bootstrap import Registry

retention_app = typer.Typer(help="Retention policies: set, list, plan (dry run), apply.",
                            no_args_is_help=True)
immutability_app = typer.Typer(help="Immutable tag rules per namespace.", no_args_is_help=True)
quota_app = typer.Typer(help="Storage quotas per namespace, and usage.", no_args_is_help=True)
tag_app = typer.Typer(help="Soft-deleted tags: list and restore.", no_args_is_help=True)


def _registry(target: Target) -> tuple[Registry, Principal]:
    """The registry on the target's database and storage (safe while it runs), and the CLI's
    principal."""
    from ..auth.identity import CLI

    # The CLI runs on the registry's host as a server admin, decided like any other caller.
    return open_existing(target.settings()), CLI


def _size(raw: str) -> int:
    from ..policy.quota import parse_size

    try:
        return parse_size(raw)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report, delete nothing")] = False,
    grace_period: Annotated[
        str | None, typer.Option(help="0, 30m, 24h, 7d [default: MOORAGE_GC_GRACE_PERIOD or 24h]")
    ] = None,
    upload_ttl: Annotated[
        str | None, typer.Option(help="expire uploads idle this long [default: MOORAGE_UPLOAD_TTL or 24h]")
    ] = None,
    runs: Annotated[bool, typer.Option("--runs", help="list recent runs instead of running")] = False,
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Collect unreferenced blobs, manifests and stale uploads (safe while the server runs)."""
    from ..gc.collector import parse_duration
    from ..logs import setup_logging
    from ..policy.quota import human_bytes

    try:
        grace = parse_duration(grace_period) if grace_period is not None else None
        ttl = parse_duration(upload_ttl) if upload_ttl is not None else None
    except ValueError as exc:
        fail(str(exc), 2)
    setup_logging("INFO", "auto")
    reg, actor = _registry(Target(data_dir, database, storage, config))
    if runs:
        _print_runs(call(reg.gc.runs, actor), json_output)
        return
    with progress_bar(quiet) as progress:
        report = call(reg.gc.run, actor, dry_run, grace, "cli", ttl, progress)
    if json_output:
        print_json(report.to_dict())
    else:
        verb = "would remove" if dry_run else "removed"
        typer.echo(
            f"gc {verb}: {report.manifests} manifests, {report.blobs} blobs "
            f"({human_bytes(report.blob_bytes)}), {report.uploads} stale uploads "
            f"({human_bytes(report.upload_bytes)}), {report.links} stale links; "
            f"{human_bytes(report.bytes_freed)} freed in total, {report.seconds:.2f}s"
        )
    if report.errors:
        for e in report.errors:
            typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)


def _print_runs(runs: list[dict[str, Any]], as_json: bool) -> None:
    from ..policy.quota import human_bytes
    from ..times import human

    if as_json:
        print_json({"runs": runs})
        return
    print_table(
        ["STARTED", "FINISHED", "TRIGGER", "STATUS", "DRY RUN", "MANIFESTS", "BLOBS", "FREED"],
        [[human(r.get("started_at"), "-"), human(r.get("finished_at"), "-"), r.get("trigger"),
          r.get("status"), "yes" if r.get("dry_run") else "no",
          (r.get("result") or {}).get("manifests", ""), (r.get("result") or {}).get("blobs", ""),
          human_bytes((r.get("result") or {}).get("bytes_freed", 0))] for r in runs],
        empty="no garbage collection runs yet",
    )


def _print_plan(result: dict, as_json: bool) -> None:
    from ..policy.quota import human_bytes

    if as_json:
        print_json(result)
        return
    rows = []
    for repo in result["repositories"]:
        for t in repo["tags"]:
            rows.append(["untag", f"{repo['repository']}:{t['tag']}", t["digest"]])
        if repo["manifests"]:
            rows.append(["delete", repo["repository"], f"{repo['manifests']} untagged manifests"])
    print_table(["ACTION", "WHAT", "DETAIL"], rows)
    verb = "untagged" if result["applied"] else "would untag"
    typer.echo(
        f"{verb} {result['tags']} tags, {result['manifests']} untagged manifests deleted now, "
        f"{result['manifests_after_restore_window']} manifests after the restore window; "
        f"frees {human_bytes(result['bytes_freed'])} ({result['bytes_freed']} bytes, "
        f"{result['blobs']} blobs) once GC has run"
    )


@retention_app.command("set")
def retention_set(
    namespace: str,
    repository: Annotated[str | None, typer.Option(help="one repository instead of all")] = None,
    keep_last_pushed: Annotated[int | None, typer.Option(help="keep the N most recently pushed tags")] = None,
    keep_last_pulled: Annotated[int | None, typer.Option(help="keep the N most recently pulled tags")] = None,
    keep_tags: Annotated[list[str] | None, typer.Option(help="keep tags matching (repeatable)")] = None,
    keep_days: Annotated[float | None, typer.Option(help="keep tags pushed or pulled within D days")] = None,
    untagged_days: Annotated[float | None, typer.Option(help="delete untagged manifests after D days")] = None,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Set the retention policy of a namespace (or one repository in it)."""
    import json

    rules = {k: v for k, v in {
        "keep_last_pushed": keep_last_pushed, "keep_last_pulled": keep_last_pulled,
        "keep_tags": keep_tags or None, "keep_days": keep_days, "untagged_days": untagged_days,
    }.items() if v is not None}
    reg, actor = _registry(Target(data_dir, database, storage, config))
    saved = call(reg.policies.set_policy, actor, namespace, repository, rules)
    typer.echo(f"retention policy of {repository or namespace}: {json.dumps(saved)}")


@retention_app.command("remove")
def retention_remove(
    namespace: str,
    repository: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Remove a retention policy."""
    reg, actor = _registry(Target(data_dir, database, storage, config))
    call(reg.policies.set_policy, actor, namespace, repository, None)
    typer.echo(f"removed the retention policy of {repository or namespace}")


@retention_app.command("list")
def retention_list(
    namespace: str,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Show the retention policies of a namespace."""
    import json

    from ..times import human

    reg, actor = _registry(Target(data_dir, database, storage, config))
    policies = call(reg.policies.policies, actor, namespace)
    if json_output:
        print_json({"policies": policies})
        return
    print_table(["SCOPE", "RULES", "UPDATED", "BY"],
                [[p["repository"] or f"{p['namespace']} (namespace)", json.dumps(p["rules"]),
                  human(p["updated_at"], "-"), p["created_by"]] for p in policies],
                empty=f"no retention policies in {namespace}")


@retention_app.command("plan")
def retention_plan(
    namespace: Annotated[str | None, typer.Argument(help="default: every namespace")] = None,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Dry run: list exactly what the policies would delete and the bytes they would free."""
    reg, actor = _registry(Target(data_dir, database, storage, config))
    _print_plan(call(reg.retention.run, actor, namespace, False), json_output)


@retention_app.command("apply")
def retention_apply(
    namespace: Annotated[str | None, typer.Argument(help="default: every namespace")] = None,
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Apply the policies now: untag (restorable) and delete untagged manifests."""
    reg, actor = _registry(Target(data_dir, database, storage, config))
    with progress_bar(quiet) as progress:
        result = call(reg.retention.run, actor, namespace, True, progress)
    _print_plan(result, json_output)


@immutability_app.command("add")
def immutability_add(
    namespace: str,
    pattern: Annotated[str, typer.Argument(help="tag glob, e.g. 'v*' or 'release-*'")],
    exception: Annotated[list[str] | None, typer.Option("--except", help="tag glob exempted (repeatable)")] = None,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Make tags matching PATTERN immutable in NAMESPACE."""
    reg, actor = _registry(Target(data_dir, database, storage, config))
    call(reg.policies.add_immutability, actor, namespace, pattern, exception or [])
    typer.echo(f"tags {pattern!r} in {namespace} are immutable"
               + (f" except {', '.join(exception)}" if exception else ""))


@immutability_app.command("remove")
def immutability_remove(
    namespace: str, pattern: str,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Remove an immutability rule."""
    reg, actor = _registry(Target(data_dir, database, storage, config))
    call(reg.policies.remove_immutability, actor, namespace, pattern)
    typer.echo(f"removed rule {pattern!r} of {namespace}")


@immutability_app.command("list")
def immutability_list(
    namespace: str,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """List the immutability rules of a namespace."""
    from ..times import human

    reg, actor = _registry(Target(data_dir, database, storage, config))
    rules = call(reg.policies.list_immutability, actor, namespace)
    if json_output:
        print_json({"rules": rules})
        return
    print_table(["PATTERN", "EXCEPT", "CREATED", "BY"],
                [[r["pattern"], ",".join(r["exceptions"]) or "-", human(r["created_at"], "-"),
                  r["created_by"]] for r in rules],
                empty=f"no immutability rules in {namespace}")


@quota_app.command("set")
def quota_set(
    namespace: str,
    size: Annotated[str, typer.Argument(help="bytes, or 20GB, 1.5TiB; 'none' removes it")],
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Limit the bytes a namespace may store (shared content counts once)."""
    from ..policy.quota import human_bytes

    limit = None if size.lower() == "none" else _size(size)
    reg, actor = _registry(Target(data_dir, database, storage, config))
    call(reg.policies.set_quota, actor, namespace, limit)
    shown = f"{human_bytes(limit)} ({limit} bytes)" if limit is not None else "none"
    typer.echo(f"quota of {namespace}: {shown}")


@quota_app.command("show")
def quota_show(
    namespace: str,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Usage of a namespace and its repositories, against its quota."""
    from ..policy.quota import human_bytes

    reg, actor = _registry(Target(data_dir, database, storage, config))
    usage = call(reg.policies.usage, actor, namespace)
    if json_output:
        print_json(usage)
        return
    limit = usage["limit_bytes"]
    typer.echo(f"{namespace}: {human_bytes(usage['usage_bytes'])} ({usage['usage_bytes']} bytes)"
               f" of {human_bytes(limit) + f' ({limit} bytes)' if limit is not None else 'no quota'}")
    print_table(["REPOSITORY", "USAGE", "BYTES"],
                [[repo, human_bytes(used), used] for repo, used in usage["repositories"].items()])


@quota_app.command("recount")
def quota_recount(
    check: Annotated[bool, typer.Option("--check", help="report wrong totals, change nothing")]
    = False,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Recount every namespace's usage from its manifests and repair the stored totals."""
    reg, actor = _registry(Target(data_dir, database, storage, config))
    wrong = call(reg.policies.recount_usage, actor, not check)
    if json_output:
        print_json({"applied": not check, "namespaces": {
            n: {"stored": s, "recounted": r} for n, (s, r) in wrong.items()}})
    else:
        print_table(["NAMESPACE", "STORED", "RECOUNTED"],
                    [[n, stored, counted] for n, (stored, counted) in wrong.items()],
                    empty="every stored total matches the recount")
        verb = "would correct" if check else "corrected"
        typer.echo(f"usage recount: {verb} {len(wrong)} namespace(s)")
    if check and wrong:
        raise typer.Exit(1)


@tag_app.command("deleted")
def tag_deleted(
    repository: str,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """List restorable (soft-deleted) tags of a repository."""
    from ..times import human

    reg, actor = _registry(Target(data_dir, database, storage, config))
    tags = call(reg.deletion.deleted_tags, actor, repository)
    if json_output:
        print_json({"repository": repository, "tags": tags})
        return
    print_table(["TAG", "DIGEST", "DELETED", "BY"],
                [[t["tag"], t["digest"], human(t["deleted_at"]), t.get("deleted_by") or "-"]
                 for t in tags],
                empty=f"no restorable tags in {repository}")


@tag_app.command("restore")
def tag_restore(
    reference: Annotated[str, typer.Argument(help="REPOSITORY:TAG")],
    force: Annotated[bool, typer.Option("--force", help="replace the tag if it was re-pushed")] = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Restore a deleted tag within the restore window."""
    repository, sep, tag = reference.rpartition(":")
    if not sep or not repository or "/" in tag:
        fail("give REPOSITORY:TAG", 2)
    reg, actor = _registry(Target(data_dir, database, storage, config))
    digest = call(reg.deletion.restore_tag, actor, repository, tag, force)
    typer.echo(f"restored {repository}:{tag} -> {digest}")
