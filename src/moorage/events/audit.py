"""The audit log as a consumer of the outbox: each event becomes (at most) one audit row.

Rows are keyed by the event id (unique), and written in the transaction that moves the audit
cursor, so a redelivered event never makes a second row. Reading the log first catches the
consumer up, so what a request just did is visible to the next query.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..metadata.access_store import AccessStore
from ..metadata.outbox_store import OutboxStore
from .dispatcher import catch_up
from .outbox import Outbox
from .types import SYSTEM, Actor, AdminAction

CONSUMER = "audit"
# Event types whose audit action is fixed; the others name theirs in the payload.
_ACTIONS = {
    "BlobPushed": "blob.push",
    "BlobMounted": "blob.mount",
    "BlobDeleted": "blob.delete",
    "ManifestPushed": "manifest.push",
    "ManifestPulled": "manifest.pull",
    "TagDeleted": "tag.delete",
    "TagRestored": "tag.restore",
    "Login": "login",
    "GcCompleted": "gc.run",
}


def audit_row(event: dict[str, Any]) -> dict[str, Any] | None:
    """The audit row an outbox event makes, or None for events the audit log leaves out
    (tag moves are part of their push; collector deletions are summed up in gc.run)."""
    kind, payload = event["type"], event.get("payload") or {}
    reference: str | None = event.get("digest")
    outcome, detail = "success", payload.get("detail")
    if kind in ("ManifestDeleted", "TagDeleted") and payload.get("by", "client") != "client":
        return None
    if kind == "ManifestDeleted":
        action = "manifest.delete"
    elif kind in ("ManifestPushed", "ManifestPulled"):
        action, reference = _ACTIONS[kind], payload.get("reference")
    elif kind == "TagDeleted":
        action, reference = _ACTIONS[kind], event.get("tag")
    elif kind == "TagRestored":
        action, reference = _ACTIONS[kind], None
        detail = {"tag": event.get("tag"), "digest": event.get("digest")}
    elif kind == "Login":
        action, reference, outcome = "login", None, payload.get("outcome", "success")
    elif kind == "AccessDenied":
        action, reference, outcome = f"access.{payload.get('action') or 'login'}", None, "denied"
    elif kind in ("PolicyChanged", "AdminAction"):
        action, reference = payload["action"], None
        outcome = payload.get("outcome", "success")
    elif kind == "WriteRefused":
        action, reference, outcome = payload["action"], payload.get("reference"), "failure"
    elif kind == "GcCompleted":
        action, reference = "gc.run", None
        detail = {"trigger": payload.get("trigger"), **(payload.get("report") or {})}
    elif kind in _ACTIONS:
        action = _ACTIONS[kind]
    else:
        return None
    return {
        "event_id": event["id"],
        "time": event["time"],
        "actor": event.get("actor"),
        "actor_kind": event.get("actor_kind"),
        "remote": event.get("address"),
        "action": action[:32],
        "repository": event.get("repository"),
        "reference": (reference or "")[:200] or None,
        "outcome": outcome,
        "detail": detail,
    }


class AuditConsumer:
    """Writes audit rows in the cursor's transaction (see the module docstring)."""

    name = CONSUMER
    transactional = True

    def __init__(self, store: AccessStore) -> None:
        self.store = store

    def handle(self, events: list[dict[str, Any]], conn: Any) -> None:
        """Append the audit rows of `events`, skipping any already written."""
        rows = [row for e in events if (row := audit_row(e)) is not None]
        self.store.append_audit_in(conn, rows)


class AuditLog:
    """Management operations record through here; reads catch the audit consumer up first."""

    def __init__(self, store: AccessStore) -> None:
        self.store = store
        self.outbox_store = OutboxStore(store.engine)
        self.outbox = Outbox(self.outbox_store)
        self.consumer = AuditConsumer(store)

    def _event(self, action: str, outcome: str, actor: str | None, actor_kind: str | None,
               remote: str | None, repository: str | None = None,
               reference: str | None = None, detail: dict[str, Any] | None = None
               ) -> AdminAction:
        who = Actor(actor, actor_kind, remote) if actor or remote else SYSTEM
        return AdminAction(actor=who, repository=repository, tag=reference, action=action,
                           outcome=outcome, detail=detail)

    def record_sync(self, **fields: Any) -> None:
        """Record a management operation now, as an AdminAction event."""
        self.outbox.emit(self._event(**fields))

    async def record(self, **fields: Any) -> None:
        """Record from a request handler (the outbox write runs in a thread)."""
        await asyncio.to_thread(self.record_sync, **fields)

    def catch_up(self) -> None:
        """Make every event written so far visible in the audit log."""
        catch_up(self.outbox_store, self.consumer)
