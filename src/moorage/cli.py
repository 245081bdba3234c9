"""The `moorage` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import __version__

app = typer.Typer(help="Moorage: an OCI registry for machine-learning teams.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Moorage: an OCI container registry for models and their environments."""


@app.command()
def serve(
    listen: Annotated[
        str | None, typer.Option(help="HOST:PORT to listen on [env MOORAGE_LISTEN; default 127.0.0.1:5000]")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="where metadata and blobs live [env MOORAGE_DATA_DIR; default ./data]")
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
    database: Annotated[
        str | None,
        typer.Option(help="postgresql://user:pass@host/db for scale-out [env MOORAGE_DATABASE_URL; default SQLite in --data-dir]"),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="s3://bucket/prefix for scale-out; endpoint and keys from AWS_* [env MOORAGE_STORAGE_URL; default files in --data-dir]"),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML file of settings [env MOORAGE_CONFIG]")
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
            auth=False if no_auth else None,
            database_url=database,
            storage_url=storage,
            config_file=config,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(run(settings))


DataDir = Annotated[Path | None, typer.Option(help="data dir of the registry [env MOORAGE_DATA_DIR]")]
user_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
robot_app = typer.Typer(help="Manage robot accounts for CI.", no_args_is_help=True)
namespace_app = typer.Typer(help="Manage namespaces and their members.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(robot_app, name="robot")
app.add_typer(namespace_app, name="namespace")


def _admin(data_dir: Path | None):  # type: ignore[no-untyped-def]
    """An AdminService on the same database the server uses (safe while it runs)."""
    from .auth.admin import AdminService
    from .auth.service import AuthService
    from .config import Settings
    from .events.audit import AuditLog
    from .metadata.access_store import AccessStore
    settings = Settings.from_env(data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = AccessStore(_open_database(settings))
    return AdminService(store, AuthService(store), AuditLog(store))


def _open_database(settings):  # type: ignore[no-untyped-def]
    """The server's database: the embedded one is migrated, a shared one must be current."""
    from .metadata.engine import make_engine, sqlite_url
    from .metadata.migrate import SchemaNotCurrent, check_current, upgrade

    url = settings.database_url or sqlite_url(settings.data_dir)
    engine = make_engine(url)
    try:
        upgrade(engine) if url.startswith("sqlite") else check_current(engine)
    except SchemaNotCurrent as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    return engine


def _run(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    from .oci.errors import RegistryError

    try:
        return fn(*args, **kwargs)
    except RegistryError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


def _password(prompt: str, given: str | None) -> str:
    return given or typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


@user_app.command("add")
def user_add(
    name: str,
    password: Annotated[str | None, typer.Option(help="prompted when not given")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="make a server admin")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create an account."""
    from .auth.admin import CLI

    _run(_admin(data_dir).add_user, CLI, name, _password("Password", password), admin)
    typer.echo(f"created user {name}")


@user_app.command("list")
def user_list(data_dir: DataDir = None) -> None:
    """List accounts."""
    from .auth.admin import CLI

    for u in _run(_admin(data_dir).list_users, CLI):
        flags = " ".join(f for f, on in (("admin", u["admin"]), ("disabled", u["disabled"])) if on)
        typer.echo(f"{u['name']}\t{flags}")


@user_app.command("passwd")
def user_passwd(
    name: str,
    password: Annotated[str | None, typer.Option(help="prompted when not given")] = None,
    data_dir: DataDir = None,
) -> None:
    """Set an account's password."""
    from .auth.admin import CLI

    _run(_admin(data_dir).set_password, CLI, name, _password("New password", password))
    typer.echo(f"password of {name} changed")


@user_app.command("disable")
def user_disable(
    name: str,
    enable: Annotated[bool, typer.Option("--enable", help="re-enable instead")] = False,
    data_dir: DataDir = None,
) -> None:
    """Disable (or with --enable, re-enable) an account."""
    from .auth.admin import CLI

    _run(_admin(data_dir).set_disabled, CLI, name, not enable)
    typer.echo(f"{name} {'enabled' if enable else 'disabled'}")


@namespace_app.command("add")
def namespace_add(
    name: str,
    public: Annotated[bool, typer.Option("--public", help="anonymous pull allowed")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a namespace (private unless --public)."""
    from .auth.admin import CLI

    _run(_admin(data_dir).add_namespace, CLI, name, "public" if public else "private")
    typer.echo(f"created namespace {name}")


@namespace_app.command("member")
def namespace_member(
    namespace: str,
    user: str,
    role: Annotated[str, typer.Argument(help="admin | maintainer | developer | reader | none")],
    data_dir: DataDir = None,
) -> None:
    """Give a user a role in a namespace (role 'none' removes them)."""
    from .auth.admin import CLI

    _run(_admin(data_dir).set_member, CLI, namespace, user, None if role == "none" else role)
    typer.echo(f"{user} is {role} in {namespace}")


@namespace_app.command("set")
def namespace_set(
    name: str,
    visibility: Annotated[str | None, typer.Option(help="public | private")] = None,
    robot_only_push: Annotated[
        bool | None, typer.Option("--robot-only-push/--anyone-may-push")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Change a namespace's visibility or restrict pushes to robot accounts."""
    from .auth.admin import CLI

    _run(_admin(data_dir).update_namespace, CLI, name, visibility, robot_only_push)
    typer.echo(f"updated namespace {name}")


@robot_app.command("add")
def robot_add(
    name: str,
    namespace: Annotated[
        list[str], typer.Option("--namespace", "-n", help="NS=pull,push (repeatable)")
    ],
    expires_in_days: Annotated[float | None, typer.Option(help="expiry in days")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a robot account; its secret is printed once."""
    from .auth.admin import CLI

    permissions: dict[str, list[str]] = {}
    for item in namespace:
        ns, _, actions = item.partition("=")
        permissions[ns] = [a for a in (actions or "pull").split(",") if a]
    expires = expires_in_days * 86400 if expires_in_days else None
    created = _run(_admin(data_dir).add_robot, CLI, name, permissions, expires, description)
    typer.echo(f"robot account: {created['name']}")
    typer.echo(f"secret (shown once): {created['secret']}")


@robot_app.command("list")
def robot_list(data_dir: DataDir = None) -> None:
    """List robot accounts."""
    from .auth.admin import CLI

    for r in _run(_admin(data_dir).list_robots, CLI):
        perms = " ".join(f"{ns}={','.join(a)}" for ns, a in r["permissions"].items())
        state = "revoked" if r["revoked"] else "active"
        typer.echo(f"{r['name']}\t{state}\t{perms}\texpires={r['expires_at'] or 'never'}")


@robot_app.command("revoke")
def robot_revoke(name: str, data_dir: DataDir = None) -> None:
    """Revoke a robot account at once."""
    from .auth.admin import CLI

    _run(_admin(data_dir).revoke_robot, CLI, name)
    typer.echo(f"revoked {name}")


@app.command()
def audit(
    actor: Annotated[str | None, typer.Option()] = None,
    action: Annotated[str | None, typer.Option()] = None,
    repository: Annotated[str | None, typer.Option()] = None,
    outcome: Annotated[str | None, typer.Option(help="success | denied | failure")] = None,
    since_hours: Annotated[float | None, typer.Option(help="only the last N hours")] = None,
    limit: Annotated[int, typer.Option()] = 100,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="export as JSON lines")] = False,
    data_dir: DataDir = None,
) -> None:
    """Show the audit log, newest first."""
    import json
    import time

    from .auth.admin import CLI

    since = time.time() - since_hours * 3600 if since_hours else None
    events = _run(_admin(data_dir).audit_events, CLI, actor=actor, action=action,
                  repository=repository, outcome=outcome, since=since, limit=limit)
    for e in events:
        if jsonl:
            typer.echo(json.dumps(e))
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e["time"]))
            typer.echo(f"{when} {e['outcome']:<8} {e['action']:<16} {e['actor'] or '-':<20} "
                       f"{e['remote'] or '-':<15} {e['repository'] or ''} {e['reference'] or ''}")
db_app = typer.Typer(help="Database schema: migrate and inspect.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _database_url(database: str | None, data_dir: Path | None, config: Path | None) -> str:
    from .config import Settings
    from .metadata.engine import sqlite_url

    try:
        settings = Settings.from_env(database_url=database, data_dir=data_dir, config_file=config)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if settings.database_url:
        return settings.database_url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return sqlite_url(settings.data_dir.resolve())


_DB_OPT = typer.Option(help="database URL [env MOORAGE_DATABASE_URL; default SQLite in --data-dir]")


@db_app.command("upgrade")
def db_upgrade(
    database: Annotated[str | None, _DB_OPT] = None,
    data_dir: Annotated[Path | None, typer.Option(help="data dir of the embedded SQLite database")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file of settings")] = None,
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
) -> None:
    """Run the schema migrations (safe to repeat; run once per upgrade, before starting nodes)."""
    from .metadata.engine import make_engine
    from .metadata.migrate import upgrade

    engine = make_engine(_database_url(database, data_dir, config))
    try:
        before, after = upgrade(engine, revision)
    except Exception as exc:  # noqa: BLE001 - report any migration failure plainly
        typer.echo(f"error: migration failed: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    if before == after:
        typer.echo(f"{url}: already at revision {after}")
    else:
        typer.echo(f"{url}: migrated from {before or 'empty'} to {after}")


@db_app.command("current")
def db_current(
    database: Annotated[str | None, _DB_OPT] = None,
    data_dir: Annotated[Path | None, typer.Option(help="data dir of the embedded SQLite database")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file of settings")] = None,
) -> None:
    """Print the database's schema revision and the one this version needs (exit 1 if behind)."""
    from .metadata.engine import make_engine
    from .metadata.migrate import current_revision, head_revision

    engine = make_engine(_database_url(database, data_dir, config))
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    typer.echo(f"current: {current or 'none'}\nneeded:  {head}")
    raise typer.Exit(0 if current == head else 1)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


# -- lifecycle: gc, retention, immutability, quotas, tag restore -------------------------------

retention_app = typer.Typer(help="Retention policies: set, list, plan (dry run), apply.",
                            no_args_is_help=True)
immutability_app = typer.Typer(help="Immutable tag rules per namespace.", no_args_is_help=True)
quota_app = typer.Typer(help="Storage quotas per namespace, and usage.", no_args_is_help=True)
tag_app = typer.Typer(help="Soft-deleted tags: list and restore.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")
app.add_typer(immutability_app, name="immutability")
app.add_typer(quota_app, name="quota")
app.add_typer(tag_app, name="tag")
Database = Annotated[
    str | None, typer.Option("--database", help="database URL [env MOORAGE_DATABASE_URL]")
]
Storage = Annotated[
    str | None,
    typer.Option("--storage", help="s3://bucket/prefix of a scale-out registry [default: files in the data dir]"),
]


def _lifecycle(data_dir: Path | None, database: str | None = None, storage: str | None = None):  # type: ignore[no-untyped-def]
    """A LifecycleService on the same database and storage the server uses (safe while it runs)."""
    from .auth.admin import CLI
    from .config import Settings
    from .events.audit import AuditLog
    from .metadata.access_store import AccessStore
    from .registry.lifecycle import make_lifecycle
    from .storage.factory import make_blob_store

    settings = Settings.from_env(data_dir=data_dir, database_url=database, storage_url=storage)
    if settings.database_url is None and not (settings.data_dir / "moorage.db").exists():
        typer.echo(f"error: no registry data in {settings.data_dir}", err=True)
        raise typer.Exit(2)
    engine = _open_database(settings)
    blob_store = make_blob_store(settings)
    service = make_lifecycle(settings, engine, blob_store, AuditLog(AccessStore(engine)), None)
    return service, CLI


def _size(raw: str) -> int:
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)?\s*", raw.lower())
    if not m:
        raise typer.BadParameter(f"invalid size {raw!r}: use e.g. 500000000, 20GB, 1.5TiB")
    unit = (m.group(2) or "").rstrip("b")
    powers = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
    base = 1024 if unit.endswith("i") else 1000
    return int(float(m.group(1)) * base ** powers[unit.rstrip("i")])


@app.command()
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report, delete nothing")] = False,
    grace_period: Annotated[
        str | None, typer.Option(help="0, 30m, 24h, 7d [default: MOORAGE_GC_GRACE_PERIOD or 24h]")
    ] = None,
    upload_ttl: Annotated[
        str | None, typer.Option(help="expire uploads idle this long [default 24h]")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    data_dir: DataDir = None,
    database: Database = None,
    storage: Storage = None,
) -> None:
    """Collect unreferenced blobs, manifests and stale uploads (safe while the server runs)."""
    import json

    from .gc.collector import parse_duration
    from .logs import setup_logging
    from .registry.lifecycle import human_bytes

    setup_logging("INFO", "auto")
    service, actor = _lifecycle(data_dir, database, storage)
    try:
        grace = parse_duration(grace_period) if grace_period is not None else None
        ttl = parse_duration(upload_ttl) if upload_ttl is not None else None
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    report = service.collector.run(dry_run=dry_run, grace_period=grace, trigger="cli",
                                   upload_ttl=ttl)
    if not dry_run:
        service._audit(actor, "gc.run", {"trigger": "cli", **report.to_dict()})
    if json_output:
        typer.echo(json.dumps(report.to_dict()))
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


def _print_plan(result: dict, as_json: bool) -> None:
    import json

    from .registry.lifecycle import human_bytes

    if as_json:
        typer.echo(json.dumps(result))
        return
    for repo in result["repositories"]:
        for t in repo["tags"]:
            typer.echo(f"untag   {repo['repository']}:{t['tag']}  {t['digest']}")
        if repo["manifests"]:
            typer.echo(f"delete  {repo['repository']}: {repo['manifests']} untagged manifests")
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
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Set the retention policy of a namespace (or one repository in it)."""
    rules = {k: v for k, v in {
        "keep_last_pushed": keep_last_pushed, "keep_last_pulled": keep_last_pulled,
        "keep_tags": keep_tags or None, "keep_days": keep_days, "untagged_days": untagged_days,
    }.items() if v is not None}
    service, actor = _lifecycle(data_dir, database)
    saved = _run(service.set_policy, actor, namespace, repository, rules)
    typer.echo(f"retention policy of {repository or namespace}: {saved}")


@retention_app.command("remove")
def retention_remove(
    namespace: str,
    repository: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Remove a retention policy."""
    service, actor = _lifecycle(data_dir, database)
    _run(service.set_policy, actor, namespace, repository, None)
    typer.echo(f"removed the retention policy of {repository or namespace}")


@retention_app.command("list")
def retention_list(namespace: str, data_dir: DataDir = None, database: Database = None) -> None:
    """Show the retention policies of a namespace."""
    import json

    service, actor = _lifecycle(data_dir, database)
    for p in _run(service.policies, actor, namespace):
        typer.echo(f"{p['repository'] or p['namespace'] + ' (namespace)'}\t{json.dumps(p['rules'])}")


@retention_app.command("plan")
def retention_plan(
    namespace: Annotated[str | None, typer.Argument(help="default: every namespace")] = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Dry run: list exactly what the policies would delete and the bytes they would free."""
    service, actor = _lifecycle(data_dir, database)
    _print_plan(_run(service.retention, actor, namespace, False), json_output)


@retention_app.command("apply")
def retention_apply(
    namespace: Annotated[str | None, typer.Argument(help="default: every namespace")] = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Apply the policies now: untag (restorable) and delete untagged manifests."""
    service, actor = _lifecycle(data_dir, database)
    _print_plan(_run(service.retention, actor, namespace, True), json_output)


@immutability_app.command("add")
def immutability_add(
    namespace: str,
    pattern: Annotated[str, typer.Argument(help="tag glob, e.g. 'v*' or 'release-*'")],
    exception: Annotated[list[str] | None, typer.Option("--except", help="tag glob exempted (repeatable)")] = None,
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Make tags matching PATTERN immutable in NAMESPACE."""
    service, actor = _lifecycle(data_dir, database)
    _run(service.add_immutability, actor, namespace, pattern, exception or [])
    typer.echo(f"tags {pattern!r} in {namespace} are immutable"
               + (f" except {', '.join(exception)}" if exception else ""))


@immutability_app.command("remove")
def immutability_remove(
    namespace: str, pattern: str, data_dir: DataDir = None, database: Database = None
) -> None:
    """Remove an immutability rule."""
    service, actor = _lifecycle(data_dir, database)
    _run(service.remove_immutability, actor, namespace, pattern)
    typer.echo(f"removed rule {pattern!r} of {namespace}")


@immutability_app.command("list")
def immutability_list(namespace: str, data_dir: DataDir = None, database: Database = None) -> None:
    """List the immutability rules of a namespace."""
    service, actor = _lifecycle(data_dir, database)
    for r in _run(service.list_immutability, actor, namespace):
        typer.echo(f"{r['pattern']}\texcept={','.join(r['exceptions']) or '-'}")


@quota_app.command("set")
def quota_set(
    namespace: str,
    size: Annotated[str, typer.Argument(help="bytes, or 20GB, 1.5TiB; 'none' removes it")],
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Limit the bytes a namespace may store (shared content counts once)."""
    service, actor = _lifecycle(data_dir, database)
    limit = None if size.lower() == "none" else _size(size)
    _run(service.set_quota, actor, namespace, limit)
    typer.echo(f"quota of {namespace}: {limit if limit is not None else 'none'}")


@quota_app.command("show")
def quota_show(namespace: str, json_output: Annotated[bool, typer.Option("--json")] = False,
               data_dir: DataDir = None, database: Database = None) -> None:
    """Usage of a namespace and its repositories, against its quota."""
    import json

    from .registry.lifecycle import human_bytes

    service, actor = _lifecycle(data_dir, database)
    usage = _run(service.usage, actor, namespace)
    if json_output:
        typer.echo(json.dumps(usage))
        return
    limit = usage["limit_bytes"]
    typer.echo(f"{namespace}: {human_bytes(usage['usage_bytes'])} ({usage['usage_bytes']} bytes)"
               f" of {human_bytes(limit) + f' ({limit} bytes)' if limit is not None else 'no quota'}")
    for repo, used in usage["repositories"].items():
        typer.echo(f"  {repo}\t{human_bytes(used)}\t{used}")


@quota_app.command("recount")
def quota_recount(
    check: Annotated[bool, typer.Option("--check", help="report wrong totals, change nothing")]
    = False,
    json_output: Annotated[bool, typer.Option("--json")] = False,
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Recount every namespace's usage from its manifests and repair the stored totals."""
    import json

    service, actor = _lifecycle(data_dir, database)
    wrong = _run(service.recount_usage, actor, not check)
    if json_output:
        typer.echo(json.dumps({"applied": not check, "namespaces": {
            n: {"stored": s, "recounted": r} for n, (s, r) in wrong.items()}}))
    else:
        for n, (stored, counted) in wrong.items():
            typer.echo(f"{n}\tstored {stored}\trecounted {counted}")
        verb = "would correct" if check else "corrected"
        typer.echo(f"usage recount: {verb} {len(wrong)} namespace(s)")
    if check and wrong:
        raise typer.Exit(1)


@tag_app.command("deleted")
def tag_deleted(repository: str, data_dir: DataDir = None, database: Database = None) -> None:
    """List restorable (soft-deleted) tags of a repository."""
    import time

    service, actor = _lifecycle(data_dir, database)
    for t in _run(service.deleted_tags, actor, repository):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t["deleted_at"]))
        typer.echo(f"{t['tag']}\t{t['digest']}\tdeleted {when}")


@tag_app.command("restore")
def tag_restore(
    reference: Annotated[str, typer.Argument(help="REPOSITORY:TAG")],
    force: Annotated[bool, typer.Option("--force", help="replace the tag if it was re-pushed")] = False,
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Restore a deleted tag within the restore window."""
    repository, sep, tag = reference.rpartition(":")
    if not sep or not repository or "/" in tag:
        typer.echo("error: give REPOSITORY:TAG", err=True)
        raise typer.Exit(2)
    service, actor = _lifecycle(data_dir, database)
    digest = _run(service.restore_tag, actor, repository, tag, force)
    typer.echo(f"restored {repository}:{tag} -> {digest}")
