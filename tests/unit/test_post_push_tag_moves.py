"""A push that only moves a tag to a manifest the repository already holds is marked on its
ManifestPushed event, and the post-push consumer queues no per-manifest work for it (the push
that stored the manifest did); processors keyed per push (replication's) still see it."""

from __future__ import annotations

from typing import Any

from moorage.bootstrap import Registry
from moorage.events.processors import PostPushConsumer, job_kind, unique_key

from .content import events_after, push, pushed_image

STATES = ["queued", "running", "done", "failed"]


class PerPush:
    """A processor keyed by the pushed reference, recording what it was asked about."""

    name = "per-push"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def unique_key(self, event: dict[str, Any]) -> str:
        return f"per-push:{event['payload']['reference']}"

    def wants(self, event: dict[str, Any]) -> bool:
        self.asked.append(event["payload"]["reference"])
        return False


def _jobs(registry: Registry, event: dict[str, Any]) -> list[str]:
    with registry.database.read() as uow:
        return [p.name for p in registry.processors
                if uow.jobs.latest_with_key(job_kind(p), unique_key(p, event), STATES)]


def test_a_tag_only_push_is_marked_and_queues_no_manifest_work(registry: Registry) -> None:
    last = registry.outbox.last_id()
    content = pushed_image(registry, "team/tagmoves", layer_bytes=256)
    push(registry, "team/tagmoves", "v1", content)
    push(registry, "team/tagmoves", "v2", content)
    first, second = [e for e in events_after(registry, last) if e["type"] == "ManifestPushed"
                     and e["repository"] == "team/tagmoves"]
    assert (first["payload"]["stored"], second["payload"]["stored"]) == (True, False)

    per_push = PerPush()
    consumer = PostPushConsumer([*registry.processors, per_push], registry.jobs)
    assert registry.processors, "the default deployment has post-push processors"
    consumer.handle([second], None)
    assert _jobs(registry, second) == []
    assert per_push.asked == ["v2"]

    consumer.handle([first], None)
    assert sorted(_jobs(registry, first)) == sorted(
        p.name for p in registry.processors if p.wants(first))
    assert _jobs(registry, first)
