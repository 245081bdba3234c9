"""What /metrics answers: every worker's instruments merged, repository labels cut to the top N,
and the registry gauges."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample

from . import files

OTHER = "other"
PER_REPOSITORY = ("moorage_repository_pushes", "moorage_repository_pulls")


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class WorkerFiles:
    """Every worker's values (and the archive of exited ones) merged, read under the metrics
    dir's shared lock so a worker's values moving into the archive are counted exactly once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterable[Metric]:
        with files.locked(self.path, shared=True):
            for attempt in range(3):
                names = glob.glob(str(self.path / "*.db"))
                try:
                    return MultiProcessCollector.merge(names, accumulate=True)
                except FileNotFoundError:  # removed between the listing and the read
                    if attempt == 2:
                        raise
        return []


class TopRepositories:
    """`source`'s families, with per-repository counters kept for the `n` largest repositories
    and the rest summed into `repository="other"` (bounded cardinality)."""

    def __init__(self, source: Collector, n: int) -> None:
        self.source, self.n = source, n

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            if family.name in PER_REPOSITORY:
                family.samples = _top(family.samples, self.n)
            yield family


def _top(samples: list[Sample], n: int) -> list[Sample]:
    # Only the counts: a `_created` series (single-process mode) has no meaning once summed.
    totals = [s for s in samples if s.name.endswith("_total")]
    totals.sort(key=lambda s: (-s.value, s.labels.get("repository", "")))
    if len(totals) <= n:
        return totals
    kept, rest = totals[:n], totals[n:]
    template = rest[0]
    summed = Sample(template.name, {"repository": OTHER}, sum(s.value for s in rest))
    return [*kept, summed]


class Exposition:
    """Renders one scrape: the process instruments (all workers' in multiprocess mode) and the
    extra collectors (registry gauges)."""

    def __init__(self, extra: Iterable[Collector], top_n: int) -> None:
        self.extra, self.top_n = list(extra), top_n

    def render(self) -> bytes:
        """The text exposition (blocking: run it in a thread)."""
        registry = CollectorRegistry(auto_describe=False)
        directory = files.directory()
        if directory is not None:
            source: Collector = WorkerFiles(directory)
        else:
            source = REGISTRY
        registry.register(TopRepositories(source, self.top_n))
        for collector in self.extra:
            registry.register(collector)
        return generate_latest(registry)
