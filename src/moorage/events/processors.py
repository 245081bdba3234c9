"""Post-push processors: work that follows a manifest push (scanning, signing, replication, …).

The `post-push` consumer of the outbox turns each ManifestPushed event into one job per
processor that wants it, keyed `<processor>:<repository>@<digest>`: a redelivered event or the
same manifest pushed again (by digest, then by tag) makes no second job. The job queue gives the
processors retries with backoff, and `failed` is their dead letter (`moorage jobs retry`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..jobs.queue import Job, JobQueue

if TYPE_CHECKING:
    from ..bootstrap import Registry

CONSUMER = "post-push"
KIND_PREFIX = "post-push."


class PostPushProcessor(Protocol):
    """One kind of post-push work; `name` names its job kind (`post-push.<name>`)."""

    name: str

    def wants(self, event: dict[str, Any]) -> bool:
        """Whether this ManifestPushed event (an outbox row) needs this processor."""

    def run(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Do the work for one manifest (raise to fail the attempt); runs as a job."""


def image_or_index(event: dict[str, Any]) -> bool:
    """Whether a ManifestPushed event stored an image manifest or an index."""
    from ..oci.mediatypes import IMAGE_TYPES, INDEX_TYPES

    media_type = (event.get("payload") or {}).get("media_type")
    return media_type in IMAGE_TYPES or media_type in INDEX_TYPES


def job_kind(processor: PostPushProcessor) -> str:
    """The job kind a processor's runs are queued as."""
    return KIND_PREFIX + processor.name


def unique_key(processor: PostPushProcessor, event: dict[str, Any]) -> str:
    """One job per processor and manifest, however often the manifest's push is seen (a
    processor with a `unique_key(event)` of its own, e.g. per tag, says otherwise)."""
    own = getattr(processor, "unique_key", None)
    if own is not None:
        return str(own(event))
    return f"{processor.name}:{event['repository']}@{event['digest']}"


def job_payload(event: dict[str, Any]) -> dict[str, Any]:
    """What a processor's `run` is given: the manifest and the push that stored it."""
    extra = event.get("payload") or {}
    return {"repository": event["repository"], "digest": event["digest"],
            "reference": extra.get("reference"), "media_type": extra.get("media_type"),
            "size": extra.get("size"), "event_id": event["id"], "actor": event.get("actor")}


class PostPushConsumer:
    """The outbox consumer that queues the processors' jobs (at least once, idempotent)."""

    name = CONSUMER
    transactional = False

    def __init__(self, processors: Sequence[PostPushProcessor], jobs: JobQueue) -> None:
        self.processors = list(processors)
        self.jobs = jobs

    def handle(self, events: list[dict[str, Any]], uow: Any) -> None:
        """Queue one job per (processor, manifest) of each ManifestPushed event."""
        for event in events:
            if event["type"] != "ManifestPushed" or not event.get("digest"):
                continue
            # A push that only moved tags (the repository held the manifest) left the work per
            # manifest to the push that stored it: skip the writes its re-queueing would cost.
            known = (event.get("payload") or {}).get("stored") is False
            for processor in self.processors:
                if known and getattr(processor, "unique_key", None) is None:
                    continue
                if processor.wants(event):
                    # Work with a visible state (a scan report) says "pending" before it is
                    # queued, so nothing reads as done-and-clean in between.
                    queued = getattr(processor, "queued", None)
                    if queued is not None:
                        queued(event["repository"], event["digest"])
                    self.jobs.enqueue_once(job_kind(processor), job_payload(event),
                                           unique_key(processor, event))


def handlers(processors: Sequence[PostPushProcessor]
             ) -> dict[str, Callable[[Job], dict[str, Any] | None]]:
    """{job kind: handler} running each processor on its job's payload."""
    def handler(processor: PostPushProcessor) -> Callable[[Job], dict[str, Any] | None]:
        return lambda job: processor.run(job.payload)

    return {job_kind(p): handler(p) for p in processors}


def configured(env: Mapping[str, str] | None = None, registry: Registry | None = None
               ) -> list[PostPushProcessor]:
    """The processors of this deployment: the SBOM generator unless `sbom_on_push` is off, the
    size insights unless `insights_on_push` is off, the model indexer unless `models_on_push`
    is off, the chunker unless `chunk_dedup` is off, the --on-push replication rules' unless `replication_on_push` is off (none at all:
    the consumer never starts)."""
    env = os.environ if env is None else env
    found: list[PostPushProcessor] = []
    if registry is not None and registry.settings.sbom_on_push:
        from ..scan.processor import SbomProcessor

        found.append(SbomProcessor(registry))
    if registry is not None and registry.settings.insights_on_push:
        from ..insights.processor import InsightsProcessor

        found.append(InsightsProcessor(registry))
    if registry is not None and registry.settings.models_on_push:
        from ..models.processor import ModelsProcessor

        found.append(ModelsProcessor(registry))
    if registry is not None and registry.settings.chunk_dedup:
        from ..chunks.processor import ChunkProcessor

        found.append(ChunkProcessor(registry))
    if registry is not None and registry.settings.replication_on_push:
        from ..replication.processor import ReplicationProcessor

        found.append(ReplicationProcessor(registry))
    from . import testing

    if env.get(testing.RECORD_ENV):
        found.append(testing.RecordingProcessor(env[testing.RECORD_ENV],
                                                int(env.get(testing.FAIL_ENV, "0"))))
    return found
