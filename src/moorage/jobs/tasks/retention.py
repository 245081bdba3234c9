"""`retention`: apply every retention policy (what would otherwise wait for the next GC), or
with `namespace` in the payload that namespace's (queued by its admin, who `by` names)."""

from __future__ import annotations

from typing import Any

from ...auth.identity import SYSTEM
from ...events.types import Actor
from ..queue import Job
from . import Handler, TaskServices

KIND = "retention"


def make(services: TaskServices) -> Handler:
    retention = services.retention

    def run(job: Job) -> dict[str, Any]:
        namespace = job.payload.get("namespace")
        by = job.payload.get("by")
        result = retention.run(SYSTEM, namespace, apply=True,
                               by=Actor(**by) if isinstance(by, dict) else None)
        return {k: result[k] for k in ("tags", "manifests", "blobs", "bytes_freed")}

    return run
