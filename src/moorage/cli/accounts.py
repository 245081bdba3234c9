"""`moorage user | robot | namespace | audit`: accounts, namespaces and the audit log."""

from __future__ import annotations

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
    open_existing,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from ..auth.admin import AdminService

user_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
robot_app = typer.Typer(help="Manage robot accounts for CI.", no_args_is_help=True)
namespace_app = typer.Typer(help="Manage namespaces and their members.", no_args_is_help=True)
AUDIT_PAGE = 1000


def _admin(target: Target) -> AdminService:
    """An AdminService on the registry's database (safe while the server runs)."""
    # The CLI acts as the CLI principal (a server admin); the Authorizer decides as for anyone.
    return open_existing(target.settings()).admin


def _password(prompt: str, given: str | None) -> str:
    return given or typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


Password = Annotated[str | None, typer.Option(help="prompted when not given")]


@user_app.command("add")
def user_add(
    name: str,
    password: Password = None,
    admin: Annotated[bool, typer.Option("--admin", help="make a server admin")] = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Create an account."""
    from ..auth.admin import CLI

    service = _admin(Target(data_dir, database, storage, config))
    call(service.add_user, CLI, name, _password("Password", password), admin)
    typer.echo(f"created user {name}")


@user_app.command("list")
def user_list(
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """List accounts."""
    from ..auth.admin import CLI
    from ..times import human

    users = call(_admin(Target(data_dir, database, storage, config)).list_users, CLI)
    if json_output:
        print_json({"users": users})
        return
    print_table(["NAME", "ADMIN", "STATE", "CREATED"],
                [[u["name"], "yes" if u["admin"] else "no",
                  "disabled" if u["disabled"] else "active", human(u["created_at"], "-")]
                 for u in users], empty="no users")


@user_app.command("passwd")
def user_passwd(
    name: str,
    password: Password = None,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Set an account's password."""
    from ..auth.admin import CLI

    service = _admin(Target(data_dir, database, storage, config))
    call(service.set_password, CLI, name, _password("New password", password))
    typer.echo(f"password of {name} changed")


@user_app.command("disable")
def user_disable(
    name: str,
    enable: Annotated[bool, typer.Option("--enable", help="re-enable instead")] = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Disable (or with --enable, re-enable) an account."""
    from ..auth.admin import CLI

    call(_admin(Target(data_dir, database, storage, config)).set_disabled, CLI, name, not enable)
    typer.echo(f"{name} {'enabled' if enable else 'disabled'}")


@namespace_app.command("add")
def namespace_add(
    name: str,
    public: Annotated[bool, typer.Option("--public", help="anonymous pull allowed")] = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Create a namespace (private unless --public)."""
    from ..auth.admin import CLI

    service = _admin(Target(data_dir, database, storage, config))
    call(service.add_namespace, CLI, name, "public" if public else "private")
    typer.echo(f"created namespace {name}")


@namespace_app.command("member")
def namespace_member(
    namespace: str,
    user: str,
    role: Annotated[str, typer.Argument(help="admin | maintainer | developer | reader | none")],
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Give a user a role in a namespace (role 'none' removes them)."""
    from ..auth.admin import CLI

    service = _admin(Target(data_dir, database, storage, config))
    call(service.set_member, CLI, namespace, user, None if role == "none" else role)
    typer.echo(f"{user} is {role} in {namespace}")


@namespace_app.command("set")
def namespace_set(
    name: str,
    visibility: Annotated[str | None, typer.Option(help="public | private")] = None,
    robot_only_push: Annotated[
        bool | None, typer.Option("--robot-only-push/--anyone-may-push")
    ] = None,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Change a namespace's visibility or restrict pushes to robot accounts."""
    from ..auth.admin import CLI

    service = _admin(Target(data_dir, database, storage, config))
    call(service.update_namespace, CLI, name, visibility, robot_only_push)
    typer.echo(f"updated namespace {name}")


@robot_app.command("add")
def robot_add(
    name: str,
    namespace: Annotated[
        list[str], typer.Option("--namespace", "-n", help="NS=pull,push (repeatable)")
    ],
    expires_in_days: Annotated[float | None, typer.Option(help="expiry in days")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Create a robot account; its secret is printed once."""
    from ..auth.admin import CLI
    from ..times import human

    permissions: dict[str, list[str]] = {}
    for item in namespace:
        ns, _, actions = item.partition("=")
        permissions[ns] = [a for a in (actions or "pull").split(",") if a]
    expires = expires_in_days * 86400 if expires_in_days else None
    service = _admin(Target(data_dir, database, storage, config))
    created = call(service.add_robot, CLI, name, permissions, expires, description)
    typer.echo(f"robot account: {created['name']}")
    typer.echo(f"secret (shown once): {created['secret']}")
    typer.echo(f"expires: {human(created['expires_at'])}")
    typer.echo(f"log in as '{created['name']}' (single quotes: $ is special in shells)")


@robot_app.command("list")
def robot_list(
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """List robot accounts."""
    from ..auth.admin import CLI
    from ..times import human

    robots = call(_admin(Target(data_dir, database, storage, config)).list_robots, CLI)
    if json_output:
        print_json({"robots": robots})
        return
    print_table(
        ["NAME", "STATE", "PERMISSIONS", "EXPIRES", "CREATED", "DESCRIPTION"],
        [[r["name"], "revoked" if r["revoked"] else "active",
          " ".join(f"{ns}={','.join(a)}" for ns, a in r["permissions"].items()),
          human(r["expires_at"]), human(r["created_at"], "-"), r["description"] or ""]
         for r in robots],
        empty="no robot accounts",
    )


@robot_app.command("revoke")
def robot_revoke(
    name: str,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Revoke a robot account at once."""
    from ..auth.admin import CLI

    call(_admin(Target(data_dir, database, storage, config)).revoke_robot, CLI, name)
    typer.echo(f"revoked {name}")


def audit(
    actor: Annotated[str | None, typer.Option()] = None,
    action: Annotated[str | None, typer.Option()] = None,
    repository: Annotated[str | None, typer.Option()] = None,
    outcome: Annotated[str | None, typer.Option(help="success | denied | failure")] = None,
    since_hours: Annotated[float | None, typer.Option(help="only the last N hours")] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="at most N events [table: 100; --jsonl: all of them]"),
    ] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="export as JSON lines (complete)")] = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Show the audit log, newest first; --jsonl streams every matching event."""
    import json
    import time

    from ..times import human, with_rfc3339

    service = _admin(Target(data_dir, database, storage, config))
    filters: dict[str, Any] = {
        "actor": actor, "action": action, "repository": repository, "outcome": outcome,
        "since": time.time() - since_hours * 3600 if since_hours else None,
    }
    wanted = limit if limit is not None else (None if jsonl else 100)
    if jsonl:
        for event in _audit_pages(service, filters, wanted):
            typer.echo(json.dumps(with_rfc3339(event)))
        return
    events = list(_audit_pages(service, filters, wanted))
    print_table(
        ["TIME", "OUTCOME", "ACTION", "ACTOR", "REMOTE", "REPOSITORY", "REFERENCE"],
        [[human(e["time"]), e["outcome"], e["action"], e["actor"] or "-", e["remote"] or "-",
          e["repository"] or "", e["reference"] or ""] for e in events],
        empty="no matching audit events",
    )


def _audit_pages(service: AdminService, filters: dict[str, Any], limit: int | None):  # type: ignore[no-untyped-def]
    """Matching events newest first, fetched a page at a time by id cursor, up to `limit`."""
    from ..auth.admin import CLI

    before: int | None = None
    left = limit
    while left is None or left > 0:
        page_size = AUDIT_PAGE if left is None else min(left, AUDIT_PAGE)
        page = call(service.audit_events, CLI, limit=page_size, before_id=before, **filters)
        yield from page
        if len(page) < page_size:
            return
        before = page[-1]["id"]
        if left is not None:
            left -= len(page)
