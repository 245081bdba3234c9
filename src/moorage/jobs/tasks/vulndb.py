"""`vulndb.import-oci`: import the OSV data artifact `vulndb_oci_ref` of this registry when it
names a digest not imported yet (scheduled every `vulndb_oci_interval`); an import that changed
data queues `scan.rematch` as any import does."""

from __future__ import annotations

from typing import Any

from ..queue import Job
from . import Handler, TaskServices

KIND = "vulndb.import-oci"


def make(services: TaskServices) -> Handler:
    def run(job: Job) -> dict[str, Any]:
        ref = str(job.payload.get("ref") or services.settings.vulndb_oci_ref or "")
        if not ref:
            return {"skipped": "no vulndb_oci_ref is set"}
        return services.osv_artifacts.refresh(ref)

    return run
