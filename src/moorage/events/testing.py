"""`test.record`, a post-push processor only for the tests, enabled by
MOORAGE_TEST_PROCESSOR=<file>: appends one JSON line per run to the file, and fails the first
MOORAGE_TEST_PROCESSOR_FAIL runs of each manifest."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

RECORD_ENV = "MOORAGE_TEST_PROCESSOR"
FAIL_ENV = "MOORAGE_TEST_PROCESSOR_FAIL"


class ProcessorFailed(Exception):
    """The test processor failing on purpose."""


class RecordingProcessor:
    """Records every run; the tests count runs per manifest."""

    name = "test.record"

    def __init__(self, record: str, fail: int = 0) -> None:
        self.record = Path(record)
        self.fail = fail

    def wants(self, event: dict[str, Any]) -> bool:
        """Every manifest."""
        return True

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Append a line for this run; fail while the manifest has had at most `fail` runs."""
        key = f"{payload['repository']}@{payload['digest']}"
        lines = self.record.read_text().splitlines() if self.record.exists() else []
        run = 1 + sum(1 for line in lines if json.loads(line)["key"] == key)
        line = json.dumps({"key": key, "run": run, "pid": os.getpid(), "t": time.time(),
                           "reference": payload.get("reference")})
        # One write of one line with O_APPEND: lines of several processes never interleave.
        fd = os.open(self.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
        if run <= self.fail:
            raise ProcessorFailed(f"failing on purpose (run {run} of {key})")
        return {"run": run}
