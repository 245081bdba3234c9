"""Replication events: which webhooks want them (a whole-rule run has no repository: only the
`*` webhooks), their CloudEvent, and their audit rows."""

from __future__ import annotations

from moorage.events.audit import audit_row
from moorage.events.types import Actor, ReplicationCompleted, ReplicationFailed
from moorage.events.webhooks import cloud_event, parse_events, wants

ACTOR = Actor("replication:nightly", "system", None)


def _record(event: ReplicationCompleted | ReplicationFailed, event_id: int = 7) -> dict:
    return {**event.to_record(), "id": event_id}


def _hook(namespace: str, events: str = "replication") -> dict:
    return {"namespace": namespace, "events": events, "created_at": 0.0}


def test_replication_is_a_webhook_category() -> None:
    assert parse_events("push,replication") == ["push", "replication"]


def test_a_whole_rule_run_goes_to_every_namespace_webhooks_only() -> None:
    done = _record(ReplicationCompleted(actor=ACTOR, rule="nightly", run=3, direction="push",
                                        upstream="dr", trigger="manual",
                                        counts={"manifests": 2}))
    assert wants(_hook("*"), done)
    assert not wants(_hook("ml"), done)
    assert not wants(_hook("*", "push,pull"), done)
    body = cloud_event(done, "https://moorage.test")
    assert body["type"] == "org.moorage.replication.completed"
    assert body["subject"] == "replication/nightly"
    assert body["data"]["replication"]["counts"] == {"manifests": 2}


def test_a_run_for_one_push_goes_to_its_namespace() -> None:
    failed = _record(ReplicationFailed(actor=ACTOR, repository="ml/app", tag="v1",
                                       rule="live", run=4, direction="push", upstream="dr",
                                       error="UpstreamError: 503", attempt=2))
    assert wants(_hook("ml"), failed) and wants(_hook("*"), failed)
    assert not wants(_hook("cv"), failed)
    body = cloud_event(failed, "https://moorage.test")
    assert (body["type"], body["subject"]) == ("org.moorage.replication.failed", "ml/app:v1")
    row = audit_row(failed)
    assert row is not None
    assert (row["action"], row["outcome"], row["reference"]) == ("replication.run", "failure",
                                                                 "v1")
    assert row["detail"]["error"] == "UpstreamError: 503"
