"""`blob.chunk`: chunk one stored blob for dedup (payload `digest`); a rerun does nothing."""

from __future__ import annotations

from typing import Any

from ..queue import Job
from . import Handler, TaskServices

KIND = "blob.chunk"


def make(services: TaskServices) -> Handler:
    def run(job: Job) -> dict[str, Any]:
        return services.chunks.chunk_blob(str(job.payload["digest"]))

    return run
