"""`gc`: garbage collection; the scheduled one (payload `every`) applies retention first."""

from __future__ import annotations

import logging
from typing import Any

from ...auth.identity import SYSTEM
from ...events.types import Actor
from ..queue import Job
from . import Handler, TaskFailed, TaskServices

KIND = "gc"
SCHEDULER = Actor("scheduler", "system", None)
log = logging.getLogger("moorage.lifecycle")


def make(services: TaskServices) -> Handler:
    """Payload: `retention` (apply every policy first), `grace_period` seconds, `dry_run`."""
    retention, collector = services.retention, services.collector

    def run(job: Job) -> dict[str, Any]:
        p = job.payload
        trigger = "schedule" if p.get("every") else "job"
        grace = p.get("grace_period")
        dry_run = bool(p.get("dry_run", False))
        if p.get("retention", False) and not dry_run:
            try:
                retention.run(SYSTEM, None, apply=True)
            except Exception:
                # A failed retention pass must not stop the collection it precedes.
                log.exception("scheduled retention failed")
        report = collector.run(dry_run=dry_run,
                               grace_period=float(grace) if grace is not None else None,
                               trigger=trigger, actor=SCHEDULER)
        if report.errors:
            raise TaskFailed("; ".join(report.errors[:3]))
        return report.to_dict()

    return run
