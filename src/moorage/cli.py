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
    from .metadata.engine import make_engine, sqlite_url
    from .metadata.migrate import check_current, upgrade

    settings = Settings.from_env(data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.database_url or sqlite_url(settings.data_dir)
    engine = make_engine(url)
    upgrade(engine) if url.startswith("sqlite") else check_current(engine)
    store = AccessStore(engine)
    return AdminService(store, AuthService(store), AuditLog(store))


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
    except Exception as exc:
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
