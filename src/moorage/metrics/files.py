"""The directory worker processes keep their metric values in (prometheus-client's multiprocess
mode). Lean on purpose: the supervisor imports it, and it imports no metrics library."""

from __future__ import annotations

import fcntl
import glob
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
SUBDIR = "metrics"
# Gauges whose samples only count while their process lives (prometheus-client's "live" modes).
_LIVE_MODES = ("liveall", "livesum", "livemax", "livemin", "livemostrecent")
_LOCK = ".lock"  # not *.db: the collector never reads it

log = logging.getLogger("moorage.metrics")


def reset(data_dir: Path) -> Path:
    """Empty `<data_dir>/metrics/` and point this process (and the workers it starts) at it.

    Called by the server before any worker exists: values left by an earlier run are gone.
    """
    path = Path(data_dir) / SUBDIR
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(path)
    return path


def directory() -> Path | None:
    """The multiprocess directory of this server, None when values are kept in-process."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


def mark_dead(pid: int) -> None:
    """Drop the live gauges of worker `pid`, which has exited (its counters still count)."""
    path = directory()
    if path is None:
        return
    for mode in _LIVE_MODES:
        for name in glob.glob(str(path / f"gauge_{mode}_{pid}.db")):
            try:
                os.remove(name)
            except FileNotFoundError:
                pass


@contextmanager
def locked(path: Path, shared: bool) -> Iterator[None]:
    """Hold the metrics dir's lock: shared while a scrape reads the files, exclusive while a dead
    worker's values move into the archive (a scrape never sees them twice or not at all)."""
    with open(path / _LOCK, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def retire(pid: int) -> None:
    """Fold the counters and histograms of exited worker `pid` into the archive files and delete
    its files (the dir stays as large as the live workers' files, whatever the restarts).

    Runs in a short-lived interpreter: the supervisor itself never imports prometheus-client.
    """
    import subprocess  # only once a worker died: the supervisor starts leaner

    path = directory()
    if path is None:
        return
    try:
        done = subprocess.run([sys.executable, "-c", _ARCHIVE_ENTRY, str(path), str(pid),
                               ARCHIVER], timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        done = None
        log.error("could not archive a dead worker's metrics: %s", exc, extra={"pid": pid})
    if done is None or done.returncode != 0:
        mark_dead(pid)  # at least its in-flight gauges go; its counters stay as they were


ARCHIVER = "moorage metrics-archive"  # the trailing word only tells `ps` what the process is
_ARCHIVE_ENTRY = ("import sys; from pathlib import Path; from moorage.metrics.archive import fold; "
                  "fold(Path(sys.argv[1]), int(sys.argv[2]))")
