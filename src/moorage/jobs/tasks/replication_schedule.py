"""`replication.schedule`: the recurring check that queues a run of each `--schedule` rule whose
cron time has come (see ReplicationService.tick)."""

from __future__ import annotations

from typing import Any

from ..queue import Job
from . import Handler, TaskServices

KIND = "replication.schedule"


def make(services: TaskServices) -> Handler:
    def run(job: Job) -> dict[str, Any]:
        return {"queued": services.replication.tick()}

    return run
