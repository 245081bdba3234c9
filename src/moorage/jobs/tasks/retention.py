"""`retention`: apply every retention policy (what would otherwise wait for the next GC)."""

from __future__ import annotations

from typing import Any

from ...auth.identity import SYSTEM
from ..queue import Job
from . import Handler, TaskServices

KIND = "retention"


def make(services: TaskServices) -> Handler:
    retention = services.retention

    def run(job: Job) -> dict[str, Any]:
        result = retention.run(SYSTEM, None, apply=True)
        return {k: result[k] for k in ("tags", "manifests", "blobs", "bytes_freed")}

    return run
