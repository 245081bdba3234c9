"""The `uploads.expire` job ends idle uploads through the job queue (no HTTP, embedded default)."""

from __future__ import annotations

import asyncio
import time

import pytest

from moorage.bootstrap import Registry
from moorage.jobs.queue import Job
from moorage.oci.errors import BlobUploadUnknown


async def _run_until_finished(registry: Registry, job_id: int, timeout: float = 30.0) -> Job:
    runner = registry.job_runner(concurrency=1)
    runner.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = registry.jobs.get(job_id)
            if job.state in ("done", "failed") or job.attempts > 1:
                return job
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s")
    finally:
        await runner.stop(5)


def test_the_upload_expiry_job_ends_idle_uploads_and_records_each(registry: Registry) -> None:
    started = asyncio.run(registry.uploads.start("team/app"))
    last_event = registry.outbox.last_id()
    job, _ = registry.jobs.enqueue("uploads.expire", {"upload_ttl": 0})
    finished = asyncio.run(_run_until_finished(registry, job.id))
    assert (finished.state, finished.last_error) == ("done", None)
    with pytest.raises(BlobUploadUnknown):
        asyncio.run(registry.uploads.status("team/app", started.id))
    expired = [e for e in registry.outbox.since(last_event, 100)
               if e["type"] == "UploadExpired"]
    assert [e["repository"] for e in expired] == ["team/app"]
