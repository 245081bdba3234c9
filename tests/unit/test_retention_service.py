"""Retention runs on the embedded registry: keep-last-N untags the oldest, with events."""

from __future__ import annotations

import time

from moorage.auth.identity import CLI
from moorage.bootstrap import Registry

from .content import push_image


def test_keep_last_pushed_untags_the_oldest_and_records_events(registry: Registry) -> None:
    digests = {}
    for tag in ("v1", "v2", "v3"):
        digests[tag], _ = push_image(registry, "team/app", tag)
        time.sleep(0.01)  # distinct push times
    registry.policies.set_policy(CLI, "team", None, {"keep_last_pushed": 2})
    before = registry.outbox.last_id()

    planned = registry.retention.run(CLI, "team", apply=False)
    assert [t["tag"] for t in planned["repositories"][0]["tags"]] == ["v1"]
    assert registry.manifests.tags("team/app", None, 10) == ["v1", "v2", "v3"]  # a plan only

    result = registry.retention.run(CLI, "team", apply=True)

    assert result["applied"] and result["tags"] == 1
    assert registry.manifests.tags("team/app", None, 10) == ["v2", "v3"]
    restorable = registry.deletion.deleted_tags(CLI, "team/app")
    assert [(r["tag"], r["digest"]) for r in restorable] == [("v1", digests["v1"])]
    events = [e for e in registry.outbox.latest(20) if e["id"] > before]
    untagged = [e for e in events if e["type"] == "TagDeleted"]
    assert [(e["tag"], e["digest"], e["payload"]["by"]) for e in untagged] == [
        ("v1", digests["v1"], "retention")]
    assert any(e["type"] == "PolicyChanged" and e["payload"]["action"] == "retention.apply"
               for e in events)


def test_a_queued_namespace_run_is_one_job_and_runs_in_the_queuers_name(
        registry: Registry) -> None:
    for tag in ("v1", "v2"):
        push_image(registry, "team/app", tag)
        time.sleep(0.01)
    registry.policies.set_policy(CLI, "team", None, {"keep_last_pushed": 1})
    job, created = registry.retention.queue(CLI, "team", registry.jobs)
    again, created_again = registry.retention.queue(CLI, "team", registry.jobs)
    assert created and not created_again and again.id == job.id
    last = registry.retention.last_job(CLI, "team", registry.jobs)
    assert last is not None and (last.id, last.state) == (job.id, "queued")
    assert registry.manifests.tags("team/app", None, 10) == ["v1", "v2"]  # queued only
    before = registry.outbox.last_id()

    registry.job_runner().tasks["retention"](job)

    assert registry.manifests.tags("team/app", None, 10) == ["v2"]
    events = [e for e in registry.outbox.latest(20) if e["id"] > before]
    assert events and {e["actor"] for e in events} == {CLI.name}, events
