"""Webhooks on the outbox: which events a webhook wants, the CloudEvent it is sent, the Standard
Webhooks signature, and the transactional `webhooks` consumer that queues the deliveries.

Wire format: CloudEvents 1.0 in structured mode (`application/cloudevents+json`, the whole
event in the body); `id` is the outbox event's id, so it is the same on every retry and a
receiver dedupes by it (`webhook-id` carries the same value). Signature (Standard Webhooks):
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the
base64-decoded part of a `whsec_…` secret, else with the secret's bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from typing import Any

from ..times import rfc3339

CONSUMER = "webhooks"
JOB_KIND = "webhook.deliver"
CONTENT_TYPE = "application/cloudevents+json"
CATEGORIES = ("push", "pull", "delete", "tag", "scan", "policy", "replication")
# outbox event type → (CloudEvents type, the categories a webhook subscribes to that include it)
_TYPES: dict[str, tuple[str, frozenset[str]]] = {
    "ManifestPushed": ("org.moorage.manifest.pushed", frozenset({"push"})),
    "ManifestPulled": ("org.moorage.manifest.pulled", frozenset({"pull"})),
    "ManifestDeleted": ("org.moorage.manifest.deleted", frozenset({"delete"})),
    "TagMoved": ("org.moorage.tag.moved", frozenset({"tag"})),
    "TagDeleted": ("org.moorage.tag.deleted", frozenset({"tag", "delete"})),
    "TagRestored": ("org.moorage.tag.restored", frozenset({"tag"})),
    "ReplicationCompleted": ("org.moorage.replication.completed", frozenset({"replication"})),
    "ReplicationFailed": ("org.moorage.replication.failed", frozenset({"replication"})),
    "ScanCompleted": ("org.moorage.scan.completed", frozenset({"scan"})),
    "VulnerabilityFound": ("org.moorage.vulnerability.found", frozenset({"scan"})),
    "SecretFound": ("org.moorage.secret.found", frozenset({"scan"})),
    # a pull policy's denial, or in a dry run the denial it would have made (data.policy.dryRun)
    "PullDenied": ("org.moorage.pull.denied", frozenset({"policy"})),
}
_REPLICATION = ("ReplicationCompleted", "ReplicationFailed")
_SCAN = ("ScanCompleted", "VulnerabilityFound", "SecretFound")


def parse_events(raw: str | Iterable[str]) -> list[str]:
    """The categories of `--events push,pull,…` (ValueError naming the known ones)."""
    items = raw.split(",") if isinstance(raw, str) else [p for r in raw for p in r.split(",")]
    wanted = sorted({p.strip().lower() for p in items if p.strip()})
    unknown = [p for p in wanted if p not in CATEGORIES]
    if unknown or not wanted:
        raise ValueError(f"unknown webhook events {', '.join(unknown) or '(none given)'}; "
                         f"use some of {', '.join(CATEGORIES)}")
    return wanted


def namespace_of(repository: str) -> str:
    """The namespace of a repository: its first path component."""
    return repository.split("/", 1)[0]


def wants(hook: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether a webhook (namespace, events) subscribes to an outbox event; a webhook gets the
    events from its creation on. A replication run over a whole rule (no repository) goes to
    the webhooks of every namespace (`*`) only."""
    mapped = _TYPES.get(event["type"])
    repository = event.get("repository")
    if mapped is None or event["time"] < hook.get("created_at", 0.0):
        return False
    if not repository and not (event["type"] in _REPLICATION and hook["namespace"] == "*"):
        return False
    if hook["namespace"] != "*" and hook["namespace"] != namespace_of(repository or ""):
        return False
    return bool(mapped[1] & set(hook["events"].split(",")))


def cloud_event(event: dict[str, Any], source: str) -> dict[str, Any]:
    """The CloudEvent (structured mode) of an outbox event."""
    payload = event.get("payload") or {}
    repository = event.get("repository")
    tag = event.get("tag")
    return {
        "specversion": "1.0",
        "id": str(event["id"]),
        "source": source,
        "type": _TYPES[event["type"]][0],
        "time": rfc3339(event["time"]),
        "subject": (f"{repository}:{tag}" if tag else repository) if repository
        else f"replication/{payload.get('rule')}",
        "datacontenttype": "application/json",
        "data": {
            "actor": event.get("actor"),
            "repository": repository,
            "digest": event.get("digest"),
            "tag": tag,
            "mediaType": payload.get("media_type"),
            "size": payload.get("size"),
            **({"by": payload["by"]} if payload.get("by") else {}),
            **({"replication": payload} if event["type"] in _REPLICATION else {}),
            **({"scan": payload} if event["type"] in _SCAN else {}),
            **({"policy": _policy(payload)} if event["type"] == "PullDenied" else {}),
        },
    }


def _policy(payload: dict[str, Any]) -> dict[str, Any]:
    """What a pull denial tells a receiver: the reference pulled, the rule, its sentence."""
    return {"reference": payload.get("reference"), "rule": payload.get("rule"),
            "message": payload.get("message"), "dryRun": bool(payload.get("dry_run"))}


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: the base64 body of `whsec_…`, else the secret's bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    return secret.encode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value of one request."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str | None, message_id: str, body: bytes,
            now: float | None = None) -> dict[str, str]:
    """The request headers of one attempt (signed when the webhook has a secret)."""
    timestamp = int(time.time() if now is None else now)
    out = {"Content-Type": CONTENT_TYPE, "webhook-id": message_id,
           "webhook-timestamp": str(timestamp), "User-Agent": "moorage-webhooks"}
    if secret:
        out["webhook-signature"] = signature(secret, message_id, timestamp, body)
    return out


class WebhookConsumer:
    """Queues one delivery per matching webhook and event in the cursor's transaction, and a
    `webhook.deliver` job per webhook that got new deliveries (in the same transaction)."""

    name = CONSUMER
    transactional = True

    def __init__(self, source: str, max_attempts: int = 5) -> None:
        self.source = source
        self.max_attempts = max_attempts

    def handle(self, events: list[dict[str, Any]], uow: Any) -> None:
        """Insert the deliveries of `events` (skipping any already made) and wake the sender."""
        hooks = uow.webhooks.subscriptions()
        if not hooks:
            return
        now = time.time()
        rows: list[dict[str, Any]] = []
        for event in events:
            matching = [h for h in hooks if wants(h, event)]
            if not matching:
                continue
            body = json.dumps(cloud_event(event, self.source), separators=(",", ":"))
            for hook in matching:
                rows.append({"webhook_id": hook["id"], "event_id": event["id"],
                             # the ordering key: a rule's runs go in order
                             "repository": event.get("repository") or
                             f"replication/{(event.get('payload') or {}).get('rule')}",
                             "type": _TYPES[event["type"]][0], "body": body,
                             "status": "pending", "attempts": 0, "next_attempt_at": now,
                             "queued_at": now, "created_at": now})
        if not rows:
            return
        uow.webhooks.add_deliveries(rows)
        first: dict[int, int] = {}
        for row in rows:
            first.setdefault(row["webhook_id"], row["event_id"])
        for hook_id, event_id in first.items():
            # One wake-up per webhook and batch: a running sender never misses new rows.
            uow.jobs.enqueue(JOB_KIND, {"webhook": hook_id}, f"webhook:{hook_id}:{event_id}",
                             now, self.max_attempts, now)
