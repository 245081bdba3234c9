"""Whole-registry counts for the metrics scrape: cheap aggregates over indexed columns."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from ..schema import (
    blobs,
    event_cursors,
    event_dead_letters,
    events,
    jobs,
    manifests,
    namespace_usage,
    repositories,
    scan_reports,
)

if TYPE_CHECKING:
    from ..uow import UnitOfWork

# Finished jobs pile up until pruned; only these states are counted (an index on state).
COUNTED_JOB_STATES = ("queued", "running", "failed")
# A consumer's lag is counted up to this many events (a bounded primary-key range per scrape).
LAG_CAP = 100_000
FINDING_SEVERITIES = ("critical", "high", "medium", "low")


class StatsQueries:
    """Aggregates over the registry's tables within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.conn = uow.conn

    def totals(self) -> dict[str, int]:
        """Rows of repositories, manifests and blobs, and the bytes of all blobs."""
        def count(table) -> int:  # type: ignore[no-untyped-def]
            return int(self.conn.execute(select(func.count()).select_from(table)).scalar_one())

        blob_bytes = self.conn.execute(select(func.coalesce(func.sum(blobs.c.size), 0)))
        return {"repositories": count(repositories), "manifests": count(manifests),
                "blobs": count(blobs), "blob_bytes": int(blob_bytes.scalar_one())}

    def scan_statuses(self) -> dict[str, int]:
        """Scan reports per status."""
        rows = self.conn.execute(select(scan_reports.c.status, func.count())
                                 .group_by(scan_reports.c.status))
        return {status: int(n) for status, n in rows}

    def findings_by_severity(self) -> dict[str, int]:
        """Vulnerability findings of done reports per severity, counted inside the database
        (occurrences of the stored `"severity": "…"` key): no report leaves it."""
        column = scan_reports.c.vulnerabilities
        sums = []
        for severity in FINDING_SEVERITIES:
            needle = f'"severity": "{severity}"'
            sums.append(func.coalesce(func.sum(
                (func.length(column) - func.length(func.replace(column, needle, "")))
                / len(needle)), 0))
        row = self.conn.execute(select(*sums).where(scan_reports.c.status == "done")).one()
        return {s: int(n) for s, n in zip(FINDING_SEVERITIES, row, strict=True)}

    def namespace_bytes(self) -> dict[str, int]:
        """Stored bytes per namespace (the usage totals quotas read)."""
        rows = self.conn.execute(select(namespace_usage.c.namespace, namespace_usage.c.bytes))
        return {ns: int(size) for ns, size in rows}

    def jobs(self, now: float | None = None) -> tuple[dict[tuple[str, str], int], dict[str, float]]:
        """Jobs per (kind, state) for the counted states, and per kind the age in seconds of
        the oldest queued job already due."""
        now = time.time() if now is None else now
        counts = {
            (kind, state): int(n) for kind, state, n in self.conn.execute(
                select(jobs.c.kind, jobs.c.state, func.count())
                .where(jobs.c.state.in_(COUNTED_JOB_STATES))
                .group_by(jobs.c.kind, jobs.c.state))
        }
        oldest = {
            kind: max(0.0, now - float(run_at)) for kind, run_at in self.conn.execute(
                select(jobs.c.kind, func.min(jobs.c.run_at))
                .where(jobs.c.state == "queued", jobs.c.run_at <= now)
                .group_by(jobs.c.kind))
        }
        return counts, oldest

    def outbox(self, consumers: Iterable[str] = ()) -> tuple[dict[str, int], dict[str, int]]:
        """Per consumer (those with a cursor and `consumers`, whose missing cursor is 0): events
        after its cursor (at most LAG_CAP), and its dead letters."""
        cursors = dict.fromkeys(consumers, 0)
        cursors.update({c: int(last) for c, last in self.conn.execute(
            select(event_cursors.c.consumer, event_cursors.c.last_id))})
        lag = {}
        for consumer, last in cursors.items():
            behind = select(events.c.id).where(events.c.id > last).limit(LAG_CAP).subquery()
            lag[consumer] = int(self.conn.execute(
                select(func.count()).select_from(behind)).scalar_one())
        dead = {c: int(n) for c, n in self.conn.execute(
            select(event_dead_letters.c.consumer, func.count())
            .group_by(event_dead_letters.c.consumer))}
        return lag, {c: dead.get(c, 0) for c in {*cursors, *dead}}
