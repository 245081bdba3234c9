"""Crash points for tests: `MOORAGE_TEST_PAUSE_AT=<point>:<marker file>` makes the first
process that reaches `<point>` create the marker and stop there (a test then SIGKILLs the
server, so the crash lands exactly between two steps). Unset, a point costs one comparison."""

from __future__ import annotations

import os
import time

_POINT, _, _MARKER = os.environ.get("MOORAGE_TEST_PAUSE_AT", "").partition(":")


def point(name: str) -> None:
    """Pause forever here if a test asked to (only the first process to arrive does)."""
    if name != _POINT or not _MARKER:
        return
    try:
        fd = os.open(_MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    while True:
        time.sleep(3600)
