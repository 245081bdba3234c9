"""`moorage ratelimit set|list|remove`: pull, push and login rates per user, robot, namespace,
and for anonymous clients (by address)."""

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
    print_json,
    print_table,
)

ratelimit_app = typer.Typer(help="Rate limits (429 TOOMANYREQUESTS over budget).",
                            no_args_is_help=True)

TargetArg = Annotated[str | None, typer.Argument(
    help="a user (user:NAME), a robot (robot$NAME) or a namespace (namespace:NAME)")]
Anonymous = Annotated[bool, typer.Option(
    "--anonymous", help="the default for anonymous clients, per address")]


def _target(target: str | None, anonymous: bool) -> str | None:
    if anonymous == (target is not None):
        fail("name one target (a user, robot$NAME or a namespace) or --anonymous", 2)
    return target


def _describe(row: dict[str, Any]) -> str:
    rates = ", ".join(f"{k} {row[k]}" for k in ("pull", "push", "login") if row.get(k))
    burst = f", burst {row['burst']}" if row.get("burst") else ""
    who = "anonymous clients (per address)" if row["kind"] == "anonymous" else (
        f"{row['kind']} {row['target']}")
    return f"{who}: {rates}{burst}"


@ratelimit_app.command("set")
def ratelimit_set(
    target: TargetArg = None,
    pull: Annotated[str | None, typer.Option("--pull", help="pulls per unit: N/s, N/min, N/h")
                    ] = None,
    push: Annotated[str | None, typer.Option("--push", help="pushes (manifests, upload starts)")
                    ] = None,
    login: Annotated[str | None, typer.Option("--login", help="logins at /token")] = None,
    burst: Annotated[int | None, typer.Option(
        "--burst", help="requests allowed at once (default: the rate's N)")] = None,
    anonymous: Anonymous = False,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Set TARGET's rates (replacing its earlier ones; a kind not given is not limited)."""
    from ..auth.identity import CLI
    from .common import open_existing

    name = _target(target, anonymous)
    body = {"pull": pull, "push": push, "login": login, "burst": burst}
    registry = open_existing(Target(data_dir, database, storage, config).settings())
    saved = call(registry.rate_limits.set, CLI, name, body)
    if json_output:
        print_json(saved)
    else:
        typer.echo(f"rate limit set: {_describe(saved)}")


@ratelimit_app.command("list")
def ratelimit_list(
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """List every configured rate limit."""
    from ..auth.identity import CLI
    from .common import open_existing

    registry = open_existing(Target(data_dir, database, storage, config).settings())
    rows = call(registry.rate_limits.list, CLI)
    if json_output:
        print_json(rows)
        return
    print_table(["kind", "target", "pull", "push", "login", "burst"],
                [[r["kind"], r["target"], r["pull"] or "-", r["push"] or "-", r["login"] or "-",
                  r["burst"] or "-"] for r in rows], empty="no rate limits")


@ratelimit_app.command("remove")
def ratelimit_remove(
    target: TargetArg = None,
    anonymous: Anonymous = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Remove TARGET's rate limits."""
    from ..auth.identity import CLI
    from .common import open_existing

    registry = open_existing(Target(data_dir, database, storage, config).settings())
    removed = call(registry.rate_limits.remove, CLI, _target(target, anonymous))
    typer.echo(f"rate limit removed: {removed['kind']} {removed['target']}")
