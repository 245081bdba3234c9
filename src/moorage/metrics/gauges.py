"""Registry-wide gauges read from the database at scrape time (cached a few seconds): storage
and dedup savings per namespace, content counts, the job queue, the outbox, the last GC run, replication (lag,
runs by outcome, bytes), health probes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ..metadata.uow import Database

log = logging.getLogger("moorage.metrics")

GcMetrics = Callable[[], tuple[list[dict[str, Any]], tuple[int, int]]]


class RegistryGauges:
    """A prometheus-client collector over the database; one database round per `cache_seconds`
    in each worker, whatever the scrape rate."""

    def __init__(self, database: Database, check_database: Callable[[], None],
                 check_storage: Callable[[], None], gc_metrics: GcMetrics,
                 consumers: Iterable[str] = (), cache_seconds: float = 10.0) -> None:
        self.database = database
        self.check_database, self.check_storage = check_database, check_storage
        self.gc_metrics = gc_metrics
        self.consumers = list(consumers)
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        """The families of the last reading, read again when older than the cache time."""
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.cache_seconds:
                self._cached = (now, list(self._read()))
            return iter(self._cached[1])

    def _read(self) -> Iterator[Metric]:
        database_up = _probe(self.check_database)
        yield _gauge("moorage_database_up", "1 when the database answers", database_up)
        yield _gauge("moorage_storage_up", "1 when the blob store answers",
                     _probe(self.check_storage))
        if not database_up:
            return
        try:
            yield from self._content()
            yield from self._queues()
            yield from self._scans()
            yield from _gc(*self.gc_metrics())
            yield from self._replication()
        except Exception:  # a failed reading is a gap in the graphs, not a failed scrape
            log.exception("could not read registry metrics")

    def _content(self) -> Iterator[Metric]:
        with self.database.read() as uow:
            totals = uow.stats.totals()
            per_namespace = uow.stats.namespace_bytes()
            dedup = uow.chunks.dedup()
        ns = GaugeMetricFamily("moorage_namespace_bytes", "Bytes stored per namespace",
                               labels=["namespace"])
        for name, size in sorted(per_namespace.items()):
            ns.add_metric([name], size)
        yield ns
        saved = GaugeMetricFamily("moorage_dedup_saved_bytes",
                                  "Bytes chunk-level dedup saves per namespace",
                                  labels=["namespace"])
        for name, figures in sorted(dedup.items()):
            saved.add_metric([name], figures["saved"])
        yield saved
        yield _gauge("moorage_repositories", "Repositories", totals["repositories"])
        yield _gauge("moorage_manifests", "Manifests (per repository)", totals["manifests"])
        yield _gauge("moorage_blobs", "Distinct blobs", totals["blobs"])
        yield _gauge("moorage_blob_bytes", "Bytes of all distinct blobs", totals["blob_bytes"])

    def _queues(self) -> Iterator[Metric]:
        with self.database.read() as uow:
            counts, oldest = uow.stats.jobs()
            lag, dead = uow.stats.outbox(self.consumers)
        jobs = GaugeMetricFamily("moorage_jobs", "Jobs queued, running or failed",
                                 labels=["kind", "state"])
        for (kind, state), n in sorted(counts.items()):
            jobs.add_metric([kind, state], n)
        yield jobs
        age = GaugeMetricFamily("moorage_job_oldest_seconds",
                                "Age of the oldest due queued job, per kind", labels=["kind"])
        for kind, seconds in sorted(oldest.items()):
            age.add_metric([kind], seconds)
        yield age
        outbox = GaugeMetricFamily("moorage_outbox_lag_events",
                                   "Outbox events a consumer has not handled yet",
                                   labels=["consumer"])
        for consumer, n in sorted(lag.items()):
            outbox.add_metric([consumer], n)
        yield outbox
        letters = GaugeMetricFamily("moorage_outbox_dead_letters",
                                    "Events a consumer gave up on", labels=["consumer"])
        for consumer, n in sorted(dead.items()):
            letters.add_metric([consumer], n)
        yield letters


    def _scans(self) -> Iterator[Metric]:
        with self.database.read() as uow:
            statuses = uow.stats.scan_statuses()
            severities = uow.stats.findings_by_severity()
        reports = GaugeMetricFamily("moorage_scan_reports", "Scan reports per status",
                                    labels=["status"])
        for status, n in sorted(statuses.items()):
            reports.add_metric([status], n)
        yield reports
        findings = GaugeMetricFamily("moorage_vulnerability_findings",
                                     "Vulnerabilities in done scan reports, per severity",
                                     labels=["severity"])
        for severity, n in severities.items():
            findings.add_metric([severity], n)
        yield findings

    def _replication(self) -> Iterator[Metric]:
        with self.database.read() as uow:
            found = uow.replication.stats()
        now = time.time()
        lag = GaugeMetricFamily("moorage_replication_lag_seconds",
                                "Seconds since a rule's last successful run (rules that never "
                                "succeeded are absent)", labels=["rule"])
        runs = CounterMetricFamily("moorage_replication_runs", "Replication runs, by outcome "
                                   "(running, done, failed)", labels=["rule", "outcome"])
        moved = CounterMetricFamily("moorage_replication_bytes", "Bytes replicated",
                                    labels=["rule"])
        for entry in found:
            if entry["last_done"] is not None:
                lag.add_metric([entry["rule"]], max(0.0, now - entry["last_done"]))
            for state, n in sorted(entry["runs"].items()):
                runs.add_metric([entry["rule"], state], n)
            moved.add_metric([entry["rule"]], entry["bytes"])
        yield lag
        yield runs
        yield moved


def _gc(runs: list[dict[str, Any]], pending: tuple[int, int]) -> Iterator[Metric]:
    """The GC gauges /metrics has always shown (same names)."""
    yield CounterMetricFamily("moorage_gc_runs", "Garbage collection runs recorded",
                              value=len(runs))
    last = next((r for r in runs if r["status"] != "running" and not r["dry_run"]), None)
    if last is not None and last["result"]:
        res = last["result"]
        yield _gauge("moorage_gc_last_run_timestamp_seconds", "When the last GC run finished",
                     last["finished_at"] or 0)
        yield _gauge("moorage_gc_last_run_seconds", "How long the last GC run took",
                     res.get("seconds", 0))
        yield _gauge("moorage_gc_last_run_success", "1 when the last GC run succeeded",
                     1 if last["status"] == "done" else 0)
        removed = GaugeMetricFamily("moorage_gc_last_run_removed",
                                    "What the last GC run removed", labels=["kind"])
        for key in ("manifests", "blobs", "uploads", "links", "bytes_freed"):
            removed.add_metric([key], res.get(key, 0))
        yield removed
    yield _gauge("moorage_gc_pending_deletions", "Storage objects queued for deletion",
                 pending[0])
    yield _gauge("moorage_gc_pending_deletion_bytes", "Bytes queued for deletion", pending[1])


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _probe(check: Callable[[], None]) -> int:
    try:
        check()
        return 1
    except Exception:  # noqa: BLE001 - any failure means down
        return 0
