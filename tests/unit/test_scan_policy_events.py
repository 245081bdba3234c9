"""Scan and policy events for webhooks: their categories (`scan`, `policy`), CloudEvent types
and data; a webhook of other categories wants none of them."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.events.types import Event, PullDenied, ScanCompleted, SecretFound, VulnerabilityFound
from moorage.events.webhooks import cloud_event, parse_events, wants

DIGEST = "sha256:" + "a" * 64


def _record(event: Event) -> dict[str, Any]:
    return {**event.to_record(), "id": 11}


def _hook(events: str) -> dict[str, Any]:
    return {"namespace": "ml", "events": events, "created_at": 0.0}


def test_scan_and_policy_are_webhook_categories() -> None:
    assert parse_events("push,scan,policy") == ["policy", "push", "scan"]


@pytest.mark.parametrize(("event", "kind"), [
    (ScanCompleted(repository="ml/app", digest=DIGEST, status="done", counts={"packages": 3}),
     "org.moorage.scan.completed"),
    (VulnerabilityFound(repository="ml/app", digest=DIGEST, total=2,
                        by_severity={"critical": 2}), "org.moorage.vulnerability.found"),
    (SecretFound(repository="ml/app", digest=DIGEST, total=1, rules=["aws"], paths=["/a"]),
     "org.moorage.secret.found"),
])
def test_scan_events_go_to_scan_webhooks_as_their_type(event: Event, kind: str) -> None:
    record = _record(event)
    assert wants(_hook("scan"), record)
    assert not wants(_hook("push,pull,delete,tag,policy,replication"), record)
    body = cloud_event(record, "https://moorage.test")
    assert body["type"] == kind
    assert (body["data"]["repository"], body["data"]["digest"]) == ("ml/app", DIGEST)
    assert body["data"]["scan"] == event.payload()


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_pull_denial_goes_to_policy_webhooks_dry_run_or_not(dry_run: bool) -> None:
    record = _record(PullDenied(repository="ml/app", digest=DIGEST, reference="v1",
                                rule="require-signature", message="not signed", dry_run=dry_run))
    assert wants(_hook("policy"), record)
    assert not wants(_hook("push,pull,delete,tag,scan,replication"), record)
    body = cloud_event(record, "https://moorage.test")
    assert body["type"] == "org.moorage.pull.denied"
    assert body["data"]["policy"] == {"reference": "v1", "rule": "require-signature",
                                      "message": "not signed", "dryRun": dry_run}
