"""`moorage events tail | failed`: the domain events of the outbox, as they are written, and
the dead letters (events a consumer gave up on)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from .common import (
    Config,
    Database,
    DataDir,
    JsonFlag,
    Storage,
    Target,
    open_existing,
    print_json,
    print_table,
)

events_app = typer.Typer(help="Domain events (the outbox).", no_args_is_help=True)
FOLLOW_POLL_SECONDS = 0.5


@events_app.command()
def tail(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new events")] = False,
    since_id: Annotated[
        int | None, typer.Option("--since-id", min=0, help="events after this id (not the last N)")
    ] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, help="the last N events")] = 20,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """Print the newest events (or those after --since-id), oldest first; --follow waits for more."""
    outbox = open_existing(Target(data_dir, database, storage, config).settings()).outbox
    batch = outbox.latest(lines) if since_id is None else outbox.since(since_id)
    last = since_id or 0
    try:
        while True:
            for event in batch:
                typer.echo(_json(event) if json_output else _line(event))
                last = event["id"]
            if not follow:
                return
            if not batch:
                time.sleep(FOLLOW_POLL_SECONDS)
            batch = outbox.since(last)
    except KeyboardInterrupt:
        return


@events_app.command()
def failed(
    limit: Annotated[int, typer.Option(min=1, max=10000, help="at most this many, newest")] = 100,
    json_output: JsonFlag = False,
    data_dir: DataDir = None, database: Database = None, storage: Storage = None,
    config: Config = None,
) -> None:
    """List the events a consumer failed on MOORAGE_EVENTS_MAX_ATTEMPTS times and went past."""
    from ..times import rfc3339

    rows = open_existing(Target(data_dir, database, storage, config).settings()).outbox \
        .dead_letters(limit)
    if json_output:
        print_json({"failed": rows})
        return
    print_table(
        ["CONSUMER", "EVENT", "TYPE", "REPOSITORY", "DIGEST", "ATTEMPTS", "FAILED AT", "ERROR"],
        [[r["consumer"], r["event_id"], r["type"], r["repository"] or "-", r["digest"] or "-",
          r["attempts"], rfc3339(r["failed_at"]), (r["error"] or "")[:80]] for r in rows],
        empty="no failed events",
    )


def _json(event: dict[str, Any]) -> str:
    from ..times import rfc3339

    return json.dumps({**event, "time": rfc3339(event["time"])})


def _line(event: dict[str, Any]) -> str:
    from ..times import rfc3339

    who = event["actor"] or "-"
    if event["address"]:
        who += f"@{event['address']}"
    where = event["repository"] or "-"
    if event["tag"]:
        where += f":{event['tag']}"
    parts = [str(event["id"]), rfc3339(event["time"]) or "", event["type"], who, where,
             event["digest"] or "-"]
    if event["payload"]:
        parts.append(json.dumps(event["payload"], sort_keys=True))
    return " ".join(parts)
