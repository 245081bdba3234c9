"""Garbage collection for administrators and jobs: who may run it, its runs, its metrics."""

from __future__ import annotations

from typing import Any

from ..auth.authorizer import SERVER, Action, Authorizer, OpenAuthorizer
from ..events.types import Actor
from ..progress import Progress, silent
from .collector import GarbageCollector, GcReport


class GcService:
    """Runs the collector on request (server admins only when access control is on)."""

    def __init__(self, collector: GarbageCollector, authorizer: Authorizer | None = None
                 ) -> None:
        self.collector = collector
        self.authorizer = authorizer or OpenAuthorizer()

    def run(self, actor: Any, dry_run: bool, grace_period: float | None,
            trigger: str = "api", upload_ttl: float | None = None,
            progress: Progress = silent) -> GcReport:
        """Run the collector now as `actor` (None durations: the configured ones)."""
        self.authorizer.require(actor, Action.ADMIN_SERVER, SERVER, "run garbage collection")
        return self.collector.run(dry_run=dry_run, grace_period=grace_period, trigger=trigger,
                                  upload_ttl=upload_ttl, actor=Actor.of(actor),
                                  progress=progress)

    def runs(self, actor: Any, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent runs, newest first."""
        self.authorizer.require(actor, Action.ADMIN_SERVER, SERVER,
                                "see garbage collection runs")
        return self.collector.runs(limit)

    def metrics(self) -> tuple[list[dict[str, Any]], tuple[int, int]]:
        """Recent runs (any process) and what is queued for storage deletion (rows, bytes)."""
        return self.collector.runs(1000), self.collector.pending()
