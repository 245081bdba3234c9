"""The archive of exited workers' metric values: one `<type>_archive.db` file per summable type,
which the multiprocess collector reads like any worker's file."""

from __future__ import annotations

import glob
import os
from collections import defaultdict
from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict

from . import files

ARCHIVE = "archive"
# Types whose samples add up across processes (a histogram's buckets are stored uncumulated).
SUMMED = ("counter", "histogram", "summary")


def fold(path: Path, pid: int) -> None:
    """Add worker `pid`'s counters, histograms and summaries to the archive, then delete every
    file of that worker (gauges end with their process)."""
    with files.locked(path, shared=False):
        for typ in SUMMED:
            dead = path / f"{typ}_{pid}.db"
            if dead.exists():
                _merge_into_archive(path, typ, dead)
                dead.unlink()
        for name in glob.glob(str(path / f"gauge_*_{pid}.db")):
            try:
                os.remove(name)
            except FileNotFoundError:
                pass


def _merge_into_archive(path: Path, typ: str, dead: Path) -> None:
    archive = path / f"{typ}_{ARCHIVE}.db"
    totals: dict[str, float] = defaultdict(float)
    for source in (archive, dead):
        if source.exists():
            for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(source)):
                totals[key] += value
    # Written beside it and renamed over it: the archive is always whole, old or new.
    temporary = path / f"{typ}_{ARCHIVE}.tmp"
    temporary.unlink(missing_ok=True)
    out = MmapedDict(str(temporary))
    try:
        for key, value in totals.items():
            out.write_value(key, value, 0.0)
    finally:
        out.close()
    os.replace(temporary, archive)
