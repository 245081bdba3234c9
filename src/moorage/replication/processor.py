"""`--on-push`: a post-push processor queueing the matching rules' runs for the pushed tag (or,
for a referrer pushed by digest, for that manifest: it follows its subject)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..jobs.tasks import TaskFailed
from . import rules
from .service import KIND, unique_key

if TYPE_CHECKING:
    from ..bootstrap import Registry


class ReplicationProcessor:
    """Queues `replication.run` for each --on-push rule a pushed manifest matches."""

    name = "replication"

    def __init__(self, registry: Registry) -> None:
        self.reg = registry

    def unique_key(self, event: dict[str, Any]) -> str:
        """One job per pushed reference: the digest's push and then its tag's are two."""
        reference = (event.get("payload") or {}).get("reference") or event["digest"]
        return f"{self.name}:{event['repository']}@{event['digest']}#{reference}"

    def wants(self, event: dict[str, Any]) -> bool:
        """Whether an --on-push rule covers the pushed repository."""
        return bool(self.reg.replication.on_push_rules(event["repository"]))

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue the runs; when a rule's run is already active (for other work) fail, so the
        queue retries this after a backoff rather than drop the push."""
        repository, reference = payload["repository"], payload.get("reference")
        if not reference or ":" in reference:
            reference = payload["digest"]
            if not self._is_referrer(repository, reference):
                return {"queued": []}
        queued, busy = [], []
        for rule in self.reg.replication.on_push_rules(repository):
            if ":" not in reference and not rules.matches(rule["tags"], reference):
                continue
            want = {"rule_id": rule["id"], "rule": rule["name"], "repository": repository,
                    "reference": reference}
            job, created = self.reg.jobs.enqueue(KIND, want, unique_key(rule["id"]))
            covered = job.state == "queued" and (
                job.payload == want or not job.payload.get("repository"))
            if created or covered:
                queued.append(rule["name"])
            else:
                busy.append(rule["name"])
        if busy:
            raise TaskFailed(f"a run of {', '.join(busy)} is active; this push is retried")
        return {"queued": queued}

    def _is_referrer(self, repository: str, digest: str) -> bool:
        from ..oci.digest import parse_digest

        row = self.reg.manifests.get(repository, parse_digest(digest), True)
        try:
            return isinstance(json.loads(row.content or b"{}").get("subject"), dict)
        except (ValueError, AttributeError):
            return False
