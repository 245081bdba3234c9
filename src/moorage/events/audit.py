"""The audit log as a consumer of the outbox: each event becomes (at most) one audit row.

Rows are keyed by the event id (unique), and written in the transaction that moves the audit
cursor, so a redelivered event never makes a second row. Reading the log first catches the
consumer up, so what a request just did is visible to the next query.
"""

from __future__ import annotations

from typing import Any

from ..metadata.uow import Database, UnitOfWork
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
    "ScanCompleted": "scan.complete",
    "VulnerabilityFound": "scan.vulnerabilities",
    "SecretFound": "scan.secrets",
}
_SCANS = ("ScanCompleted", "VulnerabilityFound", "SecretFound")


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
    elif kind == "RateLimited":
        action, reference, outcome = f"ratelimit.{payload.get('kind')}", None, "denied"
    elif kind in ("PolicyChanged", "AdminAction"):
        action, reference = payload["action"], None
        outcome = payload.get("outcome", "success")
    elif kind == "PullDenied":
        action, reference = "pull.policy", payload.get("reference")
        outcome = "dry-run" if payload.get("dry_run") else "denied"
        detail = {"rule": payload.get("rule"), "message": payload.get("message"),
                  "digest": event.get("digest")}
    elif kind == "WriteRefused":
        action, reference, outcome = payload["action"], payload.get("reference"), "failure"
    elif kind == "UnusualActivity":
        action, reference, outcome = f"alert.{payload.get('kind')}", None, "alert"
    elif kind == "GcCompleted":
        action, reference = "gc.run", None
        detail = {"trigger": payload.get("trigger"), **(payload.get("report") or {})}
    elif kind in ("ReplicationCompleted", "ReplicationFailed"):
        action, reference = "replication.run", event.get("tag")
        outcome = "success" if kind == "ReplicationCompleted" else "failure"
        detail = payload
    elif kind in _SCANS:
        action, detail = _ACTIONS[kind], payload
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

    def handle(self, events: list[dict[str, Any]], uow: UnitOfWork) -> None:
        """Append the audit rows of `events`, skipping any already written."""
        uow.access.append_audit([row for e in events if (row := audit_row(e)) is not None])


def admin_action(action: str, outcome: str, actor: str | None, actor_kind: str | None,
                 remote: str | None, repository: str | None = None,
                 reference: str | None = None, detail: dict[str, Any] | None = None
                 ) -> AdminAction:
    """The AdminAction event of one management operation (SYSTEM when nobody is named)."""
    who = Actor(actor, actor_kind, remote) if actor or remote else SYSTEM
    return AdminAction(actor=who, repository=repository, tag=reference, action=action,
                       outcome=outcome, detail=detail)


class AuditLog:
    """The audit log: reads catch the audit consumer up first; `outbox.emit` appends an event
    that is a change of its own (a denial)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.outbox = Outbox(database)
        self.consumer = AuditConsumer()

    def catch_up(self) -> None:
        """Make every event written so far visible in the audit log."""
        catch_up(self.outbox, self.consumer)

    def query(self, **filters: Any) -> list[dict[str, Any]]:
        """Audit rows, newest first (see `AccessQueries.query_audit` for the filters)."""
        self.catch_up()
        with self.database.read() as uow:
            return uow.access.query_audit(**filters)
