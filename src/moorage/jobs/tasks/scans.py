"""`scan.rematch`: re-match every done scan report against the vulnerability data held now
(queued by `moorage vulndb import`); reads stored package lists, never a layer."""

from __future__ import annotations

from typing import Any

from ..queue import Job
from . import Handler, TaskServices

KIND = REMATCH_KIND = "scan.rematch"


def make(services: TaskServices) -> Handler:
    def run(job: Job) -> dict[str, Any]:
        return services.scans.rematch()

    return run
