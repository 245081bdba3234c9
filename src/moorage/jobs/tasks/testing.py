"""`test.sleep`, only with MOORAGE_TEST_JOBS=1: records its start and end in a file, sleeps,
and fails its first `fail` attempts; the tests' probe of the runner."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ..queue import Job
from . import Handler, TaskFailed, TaskServices

KIND = "test.sleep"


def _record(path: str, event: str, job: Job) -> None:
    line = json.dumps({"event": event, "job": job.id, "key": job.unique_key, "pid": os.getpid(),
                       "attempt": job.attempts, "t": time.time()})
    # One write of one line with O_APPEND: lines of several processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def make(services: TaskServices) -> Handler:
    def run(job: Job) -> dict[str, Any]:
        p = job.payload
        record = p.get("record")
        if record:
            _record(record, "start", job)
        time.sleep(float(p.get("seconds", 0)))
        if job.attempts <= int(p.get("fail", 0)):
            if record:
                _record(record, "fail", job)
            raise TaskFailed(f"failing on purpose (attempt {job.attempts})")
        if record:
            _record(record, "end", job)
        return {"slept": p.get("seconds", 0)}

    return run
