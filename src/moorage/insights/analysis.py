"""One streamed pass over an image's layers: counters, a bounded top-K of the largest files, and
the files later layers delete or overwrite (tracked for at most `max_paths` paths).

Memory is bounded whatever the image: per layer only counters and one example path per
category; across layers the path → (size, layer) map stops growing at `max_paths` (the report
then says `truncated`), and every list kept is a heap of at most `top` items.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..scan.layers import (
    Budget,
    Entry,
    Filesystem,
    LayerError,
    Limits,
    ScanLimitExceeded,
    iter_layer,
    whiteout_target,
)

# (category, a substring every match holds, the pattern; its group 1 is the directory shown)
CATEGORIES: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("pip_cache", ".cache/pip/", re.compile(r"^((?:root|home/[^/]+)/\.cache/pip)/")),
    ("npm_cache", ".npm/", re.compile(r"^((?:root|home/[^/]+)/\.npm)/")),
    ("apt_lists", "var/lib/apt/lists/", re.compile(r"^(var/lib/apt/lists)/")),
    ("apt_cache", "var/cache/apt/", re.compile(r"^(var/cache/apt)/")),
    ("conda_pkgs", "/pkgs/", re.compile(
        r"^((?:opt/|root/|home/[^/]+/)?\.?(?:conda|miniconda3?|anaconda3?|miniforge3?|"
        r"mambaforge)/pkgs)/")),
    ("pycache", "site-packages/", re.compile(
        r"^(.*?/site-packages)/(?:.*/)?(?:__pycache__/.*|[^/]+\.py[co])$")),
    ("site_tests_docs", "site-packages/", re.compile(
        r"^(.*?/site-packages/[^/]+/(?:.*/)?(?:tests?|testing|docs?))/")),
    ("cuda_dev", "cuda", re.compile(
        r"^(usr/local/cuda[^/]*)/(?:.*/)?(?:include/.*|[^/]+\.a)$")),
)


def categories_of(path: str) -> list[tuple[str, str]]:
    """The (category, directory shown) pairs a file's path falls into."""
    found = []
    for name, needle, pattern in CATEGORIES:
        if needle in path and (m := pattern.match(path)):
            found.append((name, "/" + m.group(1)))
    return found


class TopK:
    """The `k` largest items pushed so far (a min-heap: memory is `k` items, not all)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._heap: list[tuple[int, int, dict[str, Any]]] = []
        self._seq = itertools.count()

    def push(self, size: int, item: dict[str, Any]) -> None:
        """Keep `item` if it is among the `k` largest by `size`."""
        if self.k <= 0:
            return
        entry = (size, -next(self._seq), item)  # equal sizes: the first pushed is kept
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, entry)
        elif entry > self._heap[0]:
            heapq.heapreplace(self._heap, entry)

    def items(self) -> list[dict[str, Any]]:
        """The kept items, largest first."""
        return [item for _, _, item in sorted(self._heap, reverse=True)]


@dataclass
class Category:
    """Bytes of one category (e.g. the pip cache) in one layer."""

    bytes: int = 0
    files: int = 0
    root: str = ""


@dataclass
class Hidden:
    """Bytes of one layer that later layers delete or overwrite (still shipped)."""

    bytes: int = 0
    files: int = 0
    by: set[int] = field(default_factory=set)
    largest: tuple[int, str] = (0, "")

    def add(self, path: str, size: int, by: int) -> None:
        """Count one hidden file."""
        self.bytes += size
        self.files += 1
        self.by.add(by)
        if size > self.largest[0]:
            self.largest = (size, path)


@dataclass
class LayerFacts:
    """What one layer holds (counters only)."""

    index: int  # 1-based, bottom first
    digest: str
    media_type: str
    compressed: int
    uncompressed: int = 0
    files: int = 0
    file_bytes: int = 0
    whiteouts: int = 0
    shared_with: int = 0
    skipped: str | None = None
    categories: dict[str, Category] = field(default_factory=dict)
    deleted: Hidden = field(default_factory=Hidden)
    overwritten: Hidden = field(default_factory=Hidden)


class Analysis:
    """Feed it the layers bottom to top (`layer`), then read `report`."""

    def __init__(self, limits: Limits, top: int = 50, max_paths: int = 200_000) -> None:
        self.budget = Budget(limits)
        self.max_paths = max_paths
        self.layers: list[LayerFacts] = []
        self.largest = TopK(top)
        self.deleted = TopK(top)
        self.overwritten = TopK(top)
        self.duplicates = TopK(top)
        self.totals = {"deleted": [0, 0], "overwritten": [0, 0], "duplicates": [0, 0]}
        self.truncated = False
        self._fs = Filesystem()  # path → (size, layer index) of the files lower layers left

    def skip(self, desc: dict[str, Any], reason: str) -> None:
        """A layer not read (not held here, not a tar): only its compressed size counts."""
        facts = self._facts(desc)
        facts.skipped = reason
        self.layers.append(facts)

    def layer(self, desc: dict[str, Any], chunks: Iterable[bytes]) -> None:
        """Read the next layer (raises ScanLimitExceeded; a damaged layer is marked skipped)."""
        facts = self._facts(desc)
        self.layers.append(facts)
        before = self.budget.bytes
        pending: dict[str, tuple[int, int]] = {}  # this layer's files, stacked at its end
        try:
            for entry, _ in iter_layer(chunks, self.budget, lambda e: False):
                self._entry(facts, entry, pending)
        except ScanLimitExceeded:
            raise
        except LayerError as exc:
            facts.skipped = str(exc)
        facts.uncompressed = self.budget.bytes - before
        for path, value in pending.items():
            self._fs.put(path, value)

    def _facts(self, desc: dict[str, Any]) -> LayerFacts:
        size = desc.get("size")
        return LayerFacts(len(self.layers) + 1, str(desc.get("digest", "")),
                          str(desc.get("mediaType", "")), size if isinstance(size, int) else 0)

    def _entry(self, facts: LayerFacts, entry: Entry,
               pending: dict[str, tuple[int, int]]) -> None:
        target = whiteout_target(entry.path)
        if target is not None:
            facts.whiteouts += 1
            # The map holds lower layers only (this layer's files join at its end), so a
            # whiteout here hides exactly what the spec says: lower files.
            for path, (size, where) in self._fs.remove(*target):
                self._hide("deleted", path, size, where, facts.index)
            return
        if entry.kind == "dir":
            return
        for path, (size, where) in self._fs.remove(entry.path):
            self._hide("overwritten", path, size, where, facts.index)
            if entry.kind == "file" and path == entry.path and size == entry.size:
                self._count("duplicates", path, size, where, facts.index)
        if entry.kind != "file":
            return
        facts.files += 1
        facts.file_bytes += entry.size
        self.largest.push(entry.size, {"path": "/" + entry.path, "size": entry.size,
                                       "layer": facts.index})
        for name, root in categories_of(entry.path):
            cat = facts.categories.setdefault(name, Category(root=root))
            cat.bytes += entry.size
            cat.files += 1
        if entry.path in pending or len(self._fs.files) + len(pending) < self.max_paths:
            pending[entry.path] = (entry.size, facts.index)
        else:
            self.truncated = True

    def _hide(self, kind: str, path: str, size: int, where: int, by: int) -> None:
        lower = self.layers[where - 1]
        (lower.deleted if kind == "deleted" else lower.overwritten).add("/" + path, size, by)
        self._count(kind, path, size, where, by)

    def _count(self, kind: str, path: str, size: int, where: int, by: int) -> None:
        total = self.totals[kind]
        total[0] += 1
        total[1] += size
        heap = {"deleted": self.deleted, "overwritten": self.overwritten,
                "duplicates": self.duplicates}[kind]
        heap.push(size, {"path": "/" + path, "size": size, "layer": where, "by_layer": by})

    def report(self) -> dict[str, Any]:
        """The report's body (see `insights.service` for its documented shape), no advice."""
        layers = [{
            "index": f.index, "digest": f.digest, "media_type": f.media_type,
            "compressed": f.compressed, "uncompressed": f.uncompressed, "files": f.files,
            "file_bytes": f.file_bytes, "whiteouts": f.whiteouts,
            "wasted": f.deleted.bytes + f.overwritten.bytes, "shared_with": f.shared_with,
            "skipped": f.skipped,
        } for f in self.layers]
        shared = [f for f in self.layers if f.shared_with]
        return {
            "truncated": self.truncated,
            "limits": {"max_paths": self.max_paths, "top": self.largest.k},
            "totals": {
                "layers": len(layers),
                "compressed": sum(f.compressed for f in self.layers),
                "uncompressed": sum(f.uncompressed for f in self.layers),
                "files": sum(f.files for f in self.layers),
                "file_bytes": sum(f.file_bytes for f in self.layers),
                "wasted": sum(x["wasted"] for x in layers),
            },
            "layers": layers,
            "largest_files": self.largest.items(),
            "deleted": {"files": self.totals["deleted"][0], "bytes": self.totals["deleted"][1],
                        "largest": self.deleted.items()},
            "overwritten": {"files": self.totals["overwritten"][0],
                            "bytes": self.totals["overwritten"][1],
                            "largest": self.overwritten.items()},
            "duplicates": {"files": self.totals["duplicates"][0],
                           "bytes": self.totals["duplicates"][1],
                           "largest": self.duplicates.items()},
            "shared": {"layers": len(shared), "bytes": sum(f.compressed for f in shared)},
        }
