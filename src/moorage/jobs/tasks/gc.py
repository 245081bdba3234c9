"""`gc`: garbage collection; the scheduled one (payload `every`) applies retention first."""

from __future__ import annotations

from typing import Any

from ..queue import Job
from . import Handler, TaskFailed, TaskServices

KIND = "gc"


def make(services: TaskServices) -> Handler:
    """Payload: `retention` (apply every policy first), `grace_period` seconds, `dry_run`."""
    lifecycle = services.lifecycle

    def run(job: Job) -> dict[str, Any]:
        p = job.payload
        trigger = "schedule" if p.get("every") else "job"
        grace = p.get("grace_period")
        report = lifecycle.background_gc(
            retention=bool(p.get("retention", False)), trigger=trigger,
            grace_period=float(grace) if grace is not None else None,
            dry_run=bool(p.get("dry_run", False)),
        )
        if report.errors:
            raise TaskFailed("; ".join(report.errors[:3]))
        return report.to_dict()

    return run
