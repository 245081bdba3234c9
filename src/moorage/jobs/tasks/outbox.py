"""`outbox.prune`: delete outbox events older than the retention that every consumer has
handled (an event a consumer has not seen yet is never deleted), and dead letters as old."""

from __future__ import annotations

import time
from typing import Any

from ..queue import Job
from . import Handler, TaskServices

KIND = "outbox.prune"
DEFAULT_RETENTION = 7 * 86400.0


def make(services: TaskServices) -> Handler:
    outbox = services.outbox

    def run(job: Job) -> dict[str, Any]:
        retention = float(job.payload.get("retention", DEFAULT_RETENTION))
        events, dead_letters = outbox.prune(retention, time.time())
        return {"deleted": events, "dead_letters_deleted": dead_letters}

    return run
