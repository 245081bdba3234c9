"""`quota.recount`: recount every namespace's usage and repair the stored totals."""

from __future__ import annotations

from typing import Any

from ..queue import Job
from . import Handler, TaskServices

KIND = "quota.recount"


def make(services: TaskServices) -> Handler:
    lifecycle = services.lifecycle

    def run(job: Job) -> dict[str, Any]:
        wrong = lifecycle.background_recount()
        return {"corrected": len(wrong)}

    return run
