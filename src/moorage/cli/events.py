"""`moorage events tail`: the domain events of the outbox, as they are written."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from .common import Config, Database, DataDir, JsonFlag, Storage, Target, open_existing

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
