"""The directory worker processes keep their metric values in (prometheus-client's multiprocess
mode). Lean on purpose: the supervisor imports it, and it imports no metrics library."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
SUBDIR = "metrics"
# Gauges whose samples only count while their process lives (prometheus-client's "live" modes).
_LIVE_MODES = ("liveall", "livesum", "livemax", "livemin", "livemostrecent")


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
