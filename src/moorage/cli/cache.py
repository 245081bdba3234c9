"""`moorage upstream add | list | remove` and `moorage cache add | list | remove`: upstream
registries (credentials sealed) and the pull-through cache namespaces mapped to them."""

from __future__ import annotations

import sys
from pathlib import Path
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

upstream_app = typer.Typer(help="Upstream registries (for the pull-through cache).",
                           no_args_is_help=True)
cache_app = typer.Typer(help="Pull-through cache namespaces mapped to an upstream.",
                        no_args_is_help=True)


def _registry(target: Target) -> Any:
    return open_existing(target.settings())


def _stdin(flag: str) -> str:
    value = sys.stdin.read().strip()
    if not value:
        fail(f"{flag}: stdin was empty", 2)
    return value


@upstream_app.command("add")
def upstream_add(
    name: Annotated[str, typer.Argument(help="the upstream's name")],
    url: Annotated[str, typer.Argument(help="its base URL, e.g. https://registry-1.docker.io")],
    username: Annotated[str | None, typer.Option(help="user name (with --password-stdin)")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="read the password (or access token) from stdin")] = False,
    token_stdin: Annotated[bool, typer.Option(
        "--token-stdin", help="read a bearer token from stdin")] = False,
    ca_file: Annotated[Path | None, typer.Option(help="CA bundle to verify its TLS")] = None,
    insecure: Annotated[bool, typer.Option(help="do not verify its TLS certificate")] = False,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Register an upstream registry; its password or token is stored sealed."""
    from ..auth.identity import CLI

    if password_stdin and token_stdin:
        fail("give --password-stdin or --token-stdin, not both", 2)
    if password_stdin and not username:
        fail("--password-stdin needs --username", 2)
    if username and not password_stdin:
        fail("--username needs --password-stdin", 2)
    if ca_file is not None and not ca_file.is_file():
        fail(f"--ca-file {ca_file}: no such file", 2)
    password = _stdin("--password-stdin") if password_stdin else None
    token = _stdin("--token-stdin") if token_stdin else None
    reg = _registry(Target(data_dir, database, storage, config))
    row = call(reg.upstreams.add, CLI, name, url, username=username, password=password,
               token=token, ca_file=str(ca_file.resolve()) if ca_file else None,
               insecure=insecure)
    if json_output:
        print_json(row)
    else:
        typer.echo(f"upstream {row['name']}: {row['url']} ({row['auth']} credentials)")


@upstream_app.command("list")
def upstream_list(
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Every upstream (never its secret)."""
    from ..auth.identity import CLI

    rows = call(_registry(Target(data_dir, database, storage, config)).upstreams.list_upstreams,
                CLI)
    if json_output:
        print_json({"upstreams": rows})
        return
    print_table(["NAME", "URL", "AUTH", "USERNAME", "TLS"],
                [[r["name"], r["url"], r["auth"], r["username"] or "",
                  "insecure" if r["insecure"] else (r["ca_file"] or "system CAs")]
                 for r in rows], empty="no upstreams")


@upstream_app.command("remove")
def upstream_remove(
    name: str,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Forget an upstream (no cache may use it)."""
    from ..auth.identity import CLI

    call(_registry(Target(data_dir, database, storage, config)).upstreams.remove, CLI, name)
    typer.echo(f"removed upstream {name}")


@cache_app.command("add")
def cache_add(
    name: Annotated[str, typer.Argument(help="the cache's name")],
    upstream: Annotated[str, typer.Option(help="the upstream it pulls through from")],
    namespace: Annotated[str, typer.Option(help="the namespace it serves, e.g. hub")],
    revalidate: Annotated[str, typer.Option(
        help="a cached tag is checked upstream (HEAD) once older than this")] = "10m",
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Serve NAMESPACE/x from upstream x: fetched on first pull, stored, then served locally."""
    from ..auth.identity import CLI
    from ..gc.collector import parse_duration

    try:
        seconds = parse_duration(revalidate)
    except ValueError as exc:
        fail(str(exc), 2)
    reg = _registry(Target(data_dir, database, storage, config))
    row = call(reg.caches.add, CLI, name, upstream, namespace, seconds)
    if json_output:
        print_json(row)
    else:
        typer.echo(f"cache {row['name']}: {row['namespace']}/… pulls through from "
                   f"{row['upstream']} ({row['upstream_url']}), tags revalidated after "
                   f"{revalidate}")


@cache_app.command("list")
def cache_list(
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Every cache namespace and its upstream."""
    from ..auth.identity import CLI

    rows = call(_registry(Target(data_dir, database, storage, config)).caches.list_caches, CLI)
    if json_output:
        print_json({"caches": rows})
        return
    print_table(["NAME", "NAMESPACE", "UPSTREAM", "URL", "REVALIDATE"],
                [[r["name"], r["namespace"], r["upstream"], r["upstream_url"],
                  f"{r['revalidate']:g}s"] for r in rows], empty="no caches")


@cache_app.command("remove")
def cache_remove(
    name: str,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Stop caching (what was cached stays until deleted or collected)."""
    from ..auth.identity import CLI

    call(_registry(Target(data_dir, database, storage, config)).caches.remove, CLI, name)
    typer.echo(f"removed cache {name}")
