"""The lifecycle façade the management API and the CLI call: one object over the policy,
deletion, retention and garbage-collection services (each its own module), plus the scheduled
runs the job queue starts."""

from __future__ import annotations

import logging
from typing import Any

from ..auth.identity import SYSTEM
from ..events.types import Actor
from ..gc.collector import GarbageCollector, GcReport
from ..gc.service import GcService
from .deletion import DeletionService
from .policies import PolicyService
from .pulls import PullRecorder
from .retention import RetentionService

log = logging.getLogger("moorage.lifecycle")
SCHEDULER = Actor("scheduler", "system", None)


class LifecycleService:
    """Policies, soft delete and restore, retention and GC, for administrators and jobs."""

    def __init__(self, policies: PolicyService, deletion: DeletionService,
                 retention_runs: RetentionService, gc_service: GcService,
                 pulls: PullRecorder) -> None:
        self.policy = policies
        self.deletion = deletion
        self.retention_runs = retention_runs
        self.gc_service = gc_service
        self.collector: GarbageCollector = gc_service.collector
        self.pulls = pulls

    # -- policies -----------------------------------------------------------------------------

    def list_immutability(self, actor: Any, namespace: str) -> list[dict[str, Any]]:
        """The immutability rules of a namespace."""
        return self.policy.list_immutability(actor, namespace)

    def add_immutability(self, actor: Any, namespace: str, pattern: str,
                         exceptions: list[str] | str | None) -> None:
        """Make matching tags immutable."""
        self.policy.add_immutability(actor, namespace, pattern, exceptions)

    def remove_immutability(self, actor: Any, namespace: str, pattern: str) -> None:
        """Remove an immutability rule."""
        self.policy.remove_immutability(actor, namespace, pattern)

    def set_quota(self, actor: Any, namespace: str, limit: int | None) -> None:
        """Set or remove a namespace quota."""
        self.policy.set_quota(actor, namespace, limit)

    def usage(self, actor: Any, namespace: str) -> dict[str, Any]:
        """Usage of a namespace and its repositories, with the quota."""
        return self.policy.usage(actor, namespace)

    def recount_usage(self, actor: Any, apply: bool) -> dict[str, tuple[int, int]]:
        """Recount (and with `apply` repair) every namespace's usage."""
        return self.policy.recount_usage(actor, apply)

    def set_policy(self, actor: Any, namespace: str, repository: str | None,
                   rules: dict[str, Any] | None) -> dict[str, Any] | None:
        """Set or remove a retention policy."""
        return self.policy.set_policy(actor, namespace, repository, rules)

    def policies(self, actor: Any, namespace: str) -> list[dict[str, Any]]:
        """The retention policies of a namespace."""
        return self.policy.policies(actor, namespace)

    # -- deletion, retention, GC --------------------------------------------------------------

    def retention(self, actor: Any, namespace: str | None, apply: bool) -> dict[str, Any]:
        """Plan (or apply) every retention policy of a namespace (None: all, for the schedule)."""
        return self.retention_runs.run(actor, namespace, apply)

    def deleted_tags(self, actor: Any, repository: str) -> list[dict[str, Any]]:
        """Restorable tags of a repository, newest first."""
        return self.deletion.deleted_tags(actor, repository)

    def restore_tag(self, actor: Any, repository: str, tag: str, force: bool = False) -> str:
        """Bring back a soft-deleted tag; returns the digest it points at again."""
        return self.deletion.restore_tag(actor, repository, tag, force)

    def gc(self, actor: Any, dry_run: bool, grace_period: float | None,
           trigger: str = "api") -> GcReport:
        """Run the collector now (server admins only when access control is on)."""
        return self.gc_service.run(actor, dry_run, grace_period, trigger)

    def gc_runs(self, actor: Any, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent collector runs (server admins)."""
        return self.gc_service.runs(actor, limit)

    def metrics(self) -> tuple[list[dict[str, Any]], tuple[int, int]]:
        """Recent runs (any process) and what is queued for storage deletion."""
        return self.gc_service.metrics()

    # -- background jobs (jobs/tasks/) --------------------------------------------------------

    def background_gc(self, retention: bool, trigger: str, grace_period: float | None = None,
                      dry_run: bool = False) -> GcReport:
        """A GC run of the job queue (the schedule's applies every retention policy first)."""
        if retention and not dry_run:
            try:
                self.retention(SYSTEM, None, apply=True)
            except Exception:
                log.exception("scheduled retention failed")
        return self.collector.run(dry_run=dry_run, grace_period=grace_period, trigger=trigger,
                                  actor=SCHEDULER)

    def background_retention(self) -> dict[str, Any]:
        """Apply every namespace's retention policies (a job)."""
        return self.retention(SYSTEM, None, apply=True)

    def background_recount(self) -> dict[str, tuple[int, int]]:
        """Recount usage and repair the stored totals (a job)."""
        return self.recount_usage(SYSTEM, apply=True)
