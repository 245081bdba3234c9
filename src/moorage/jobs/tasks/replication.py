"""`replication.run`: one run of a replication rule (queued by `moorage replication run`,
--on-push, or a retry); see replication/service.py."""

from __future__ import annotations

from typing import Any

from ..queue import Job
from . import Handler, TaskServices

KIND = "replication.run"


def make(services: TaskServices) -> Handler:
    def run(job: Job) -> dict[str, Any]:
        return services.replication.execute(job)

    return run
