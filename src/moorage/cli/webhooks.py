"""`moorage webhook add | list | remove | deliveries | redeliver`: webhooks for server admins."""

from __future__ import annotations

import sys
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

webhook_app = typer.Typer(help="Webhooks: CloudEvents to a URL on push, pull, delete, tag.",
                          no_args_is_help=True)


def _service(target: Target) -> Any:
    return open_existing(target.settings()).webhooks


@webhook_app.command("add")
def add(
    namespace: Annotated[str, typer.Argument(help="namespace whose events are sent (* for all)")],
    url: Annotated[str, typer.Argument(help="http(s) URL the events are POSTed to")],
    events: Annotated[str, typer.Option(help="comma-separated: push,pull,delete,tag,scan,policy,replication")] = "push",
    secret_stdin: Annotated[bool, typer.Option(
        "--secret-stdin", help="read the signing secret (whsec_… or any text) from stdin")] = False,
    name: Annotated[str | None, typer.Option(help="the webhook's name [default: generated]")] = None,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Send the namespace's events to URL (signed with Standard Webhooks when a secret is given)."""
    from ..auth.identity import CLI
    from ..events.webhooks import parse_events
    from ..oci.errors import RegistryError
    from ..registry.webhooks import check_url

    try:
        check_url(url)
        parse_events(events)
    except (RegistryError, ValueError) as exc:
        fail(getattr(exc, "message", str(exc)), 2)
    secret = None
    if secret_stdin:
        secret = sys.stdin.read().strip()
        if not secret:
            fail("--secret-stdin: stdin was empty", 2)
    hook = call(_service(Target(data_dir, database, storage, config)).add, CLI, namespace, url,
                events, secret, name)
    if json_output:
        print_json(hook)
    else:
        typer.echo(f"webhook {hook['name']}: {','.join(hook['events'])} of "
                   f"{hook['namespace']} to {hook['url']}"
                   f"{' (signed)' if hook['signed'] else ' (unsigned)'}")


@webhook_app.command("list")
def list_webhooks(
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Every webhook, with its pending and failed deliveries."""
    from ..auth.identity import CLI

    hooks = call(_service(Target(data_dir, database, storage, config)).list_webhooks, CLI)
    if json_output:
        print_json({"webhooks": hooks})
        return
    print_table(["NAME", "NAMESPACE", "EVENTS", "URL", "SIGNED", "PENDING", "FAILED"],
                [[h["name"], h["namespace"], ",".join(h["events"]), h["url"],
                  "yes" if h["signed"] else "no", h["pending"], h["failed"]] for h in hooks],
                empty="no webhooks")


@webhook_app.command("remove")
def remove(
    name: str,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Delete a webhook and its delivery history."""
    from ..auth.identity import CLI

    call(_service(Target(data_dir, database, storage, config)).remove, CLI, name)
    typer.echo(f"removed webhook {name}")


@webhook_app.command("deliveries")
def deliveries(
    name: str,
    failed: Annotated[bool, typer.Option("--failed", help="only the given-up ones")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many, newest")] = 100,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """A webhook's deliveries, newest first: status, attempts, the receiver's last answer."""
    from ..auth.identity import CLI
    from ..times import human

    rows = call(_service(Target(data_dir, database, storage, config)).deliveries, CLI, name,
                failed, limit)
    if json_output:
        print_json({"deliveries": rows})
        return
    print_table(["ID", "EVENT", "TYPE", "REPOSITORY", "STATUS", "ATTEMPTS", "LAST STATUS",
                 "LAST ERROR", "QUEUED"],
                [[r["id"], r["event_id"], r["type"], r["repository"], r["status"],
                  r["attempts"], r["last_status"] or "", r["last_error"] or "",
                  human(r["queued_at"])] for r in rows],
                empty=f"no deliveries of {name}")


@webhook_app.command("redeliver")
def redeliver(
    delivery_id: int,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Send a failed (or delivered) delivery again, now."""
    from ..auth.identity import CLI

    row = call(_service(Target(data_dir, database, storage, config)).redeliver, CLI,
               delivery_id)
    typer.echo(f"delivery {row['id']} is {row['status']} again")
