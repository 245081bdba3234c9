"""`quota.recount`: recount every namespace's usage and repair the stored totals."""

from __future__ import annotations

from typing import Any

from ...auth.identity import SYSTEM
from ..queue import Job
from . import Handler, TaskServices

KIND = "quota.recount"


def make(services: TaskServices) -> Handler:
    policies = services.policies

    def run(job: Job) -> dict[str, Any]:
        wrong = policies.recount_usage(SYSTEM, apply=True)
        return {"corrected": len(wrong)}

    return run
