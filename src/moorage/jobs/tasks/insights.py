"""`insights`: compute one image's size insights report (queued by `moorage insights` and for
the images of a pushed index)."""

from __future__ import annotations

from typing import Any

from ..queue import Job
from . import Handler, TaskServices

KIND = "insights"


def make(services: TaskServices) -> Handler:
    def run(job: Job) -> dict[str, Any]:
        return services.insights.run(job.payload["repository"], job.payload["digest"])

    return run
