"""`outbox.prune`: delete outbox events older than the retention that every consumer has
handled (an event a consumer has not seen yet is never deleted)."""

from __future__ import annotations

import time
from typing import Any

from ..queue import Job
from . import Handler, TaskFailed

KIND = "outbox.prune"
DEFAULT_RETENTION = 7 * 86400.0


def make(lifecycle: Any) -> Handler:
    def run(job: Job) -> dict[str, Any]:
        audit = getattr(lifecycle, "audit", None)
        if audit is None:
            raise TaskFailed("this process has no outbox")
        retention = float(job.payload.get("retention", DEFAULT_RETENTION))
        return {"deleted": audit.outbox.prune(retention, time.time())}

    return run
