"""`uploads.expire`: end upload sessions idle longer than the upload TTL, freeing their storage
(S3 multipart parts) without a whole GC run."""

from __future__ import annotations

from typing import Any

from ..queue import Job
from . import Handler, TaskFailed, TaskServices

KIND = "uploads.expire"


def make(services: TaskServices) -> Handler:
    collector = services.collector

    def run(job: Job) -> dict[str, Any]:
        ttl = job.payload.get("upload_ttl")
        report = collector.expire_uploads(float(ttl) if ttl is not None else None)
        if report.errors:
            raise TaskFailed("; ".join(report.errors[:3]))
        return {"uploads": report.uploads, "bytes": report.upload_bytes}

    return run
