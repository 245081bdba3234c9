"""The `uploads.expire` job ends idle uploads through the job queue (no HTTP, embedded default)."""

from __future__ import annotations

import asyncio

import pytest

from moorage.bootstrap import Registry
from moorage.oci.errors import BlobUploadUnknown

from .content import run_job


def test_the_upload_expiry_job_ends_idle_uploads_and_records_each(registry: Registry) -> None:
    started = asyncio.run(registry.uploads.start("team/app"))
    last_event = registry.outbox.last_id()
    job, _ = registry.jobs.enqueue("uploads.expire", {"upload_ttl": 0})
    finished = run_job(registry, job.id)
    assert (finished.state, finished.last_error) == ("done", None)
    with pytest.raises(BlobUploadUnknown):
        asyncio.run(registry.uploads.status("team/app", started.id))
    expired = [e for e in registry.outbox.since(last_event, 100)
               if e["type"] == "UploadExpired"]
    assert [e["repository"] for e in expired] == ["team/app"]
