"""Retention runs: plan (or apply) every policy of a namespace, one repository per transaction."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..auth.authorizer import Authorizer, OpenAuthorizer
from ..auth.scopes import namespace_of
from ..events.types import Actor, ManifestDeleted, TagDeleted, records
from ..metadata.uow import Database, UnitOfWork
from ..policy.retention import RepoPlan, RetentionRules, plan_repository
from ..progress import Progress, silent
from .access import (
    policy_changed,
    require_namespace_admin,
    require_server_admin,
    valid_namespace,
)

if TYPE_CHECKING:
    from ..jobs.queue import Job, JobQueue


JOB_KIND = "retention"


def job_key(namespace: str) -> str:
    """The unique key of a namespace's retention job (the schedule's job has none)."""
    return f"namespace:{namespace}"


@dataclass
class _Outcome:
    """One repository's plan and what it frees."""

    plan: RepoPlan
    sizes: dict[int, int] = field(default_factory=dict)  # manifest id -> bytes, gone or later
    refs: set[str] = field(default_factory=set)  # blobs those manifests reference
    digests: dict[int, str] = field(default_factory=dict)  # id -> digest, deleted at once


class RetentionService:
    """Runs retention policies (on demand, and for the schedule over every namespace)."""

    def __init__(self, database: Database, authorizer: Authorizer | None = None) -> None:
        self.database = database
        self.authorizer = authorizer or OpenAuthorizer()

    def queue(self, actor: Any, namespace: str, jobs: JobQueue) -> tuple[Job, bool]:
        """Queue the `retention` job of `namespace` for its admin `actor`: one at a time, a job
        already queued or running is returned instead. Returns (job, created)."""
        require_namespace_admin(self.authorizer, actor, valid_namespace(namespace))
        by = Actor.of(actor)
        payload = {"namespace": namespace,
                   "by": {"name": by.name, "kind": by.kind, "address": by.address}}
        return jobs.enqueue(JOB_KIND, payload, job_key(namespace))

    def last_job(self, actor: Any, namespace: str, jobs: JobQueue) -> Job | None:
        """The newest retention job queued for `namespace` (its admins only)."""
        require_namespace_admin(self.authorizer, actor, valid_namespace(namespace))
        return jobs.latest(JOB_KIND, job_key(namespace))

    def scopes(self, namespace: str | None) -> list[tuple[str, RetentionRules]]:
        """(repository, rules) for every repository a policy governs; a repository's own
        policy wins over its namespace's."""
        by_ns: dict[str, dict[str | None, RetentionRules]] = {}
        with self.database.read() as uow:
            policies = uow.policies.retention(namespace)
        for p in policies:
            by_ns.setdefault(p["namespace"], {})[p["repository"]] = RetentionRules.from_dict(
                p["rules"])
        out = []
        with self.database.read() as uow:
            for ns, scoped in sorted(by_ns.items()):
                for repo in uow.graph.repositories_in(ns):
                    rules = scoped.get(repo) or scoped.get(None)
                    if rules is not None:
                        out.append((repo, rules))
        return out

    def run(self, actor: Any, namespace: str | None, apply: bool,
            progress: Progress = silent, by: Actor | None = None) -> dict[str, Any]:
        """Plan (or apply) every retention policy of a namespace (None: all, for the schedule);
        `progress` hears of each repository done; the events name `by` when given (the admin
        who queued the job), else `actor`."""
        if namespace is not None:
            require_namespace_admin(self.authorizer, actor, valid_namespace(namespace))
        else:
            require_server_admin(self.authorizer, actor, "run every namespace's policies")
        now = time.time()
        with self.database.read() as uow:
            repo_ids = {n: i for i, n in uow.graph.repository_ids()}
        rule_cache: dict[str, list[tuple[str, str]]] = {}
        outcomes: list[_Outcome] = []
        scopes = self.scopes(namespace)
        for done, (repo, rules) in enumerate(scopes):
            progress("repositories", done, len(scopes))
            repo_id = repo_ids.get(repo)
            if repo_id is None:
                continue
            ns = namespace_of(repo)
            if ns not in rule_cache:
                with self.database.read() as uow:
                    rule_cache[ns] = uow.policies.rules(ns)
            outcome = self._repository(repo_id, repo, rules, rule_cache[ns], now, apply,
                                       by or Actor.of(actor))
            plan = outcome.plan
            if plan.tags or plan.manifests or plan.later:
                outcomes.append(outcome)
        progress("repositories", len(scopes), len(scopes))
        result = self._summary(outcomes, apply)
        if apply:
            with self.database.write() as uow:
                uow.emit(policy_changed(by or actor, "retention.apply", {
                    "namespace": namespace, "tags": result["tags"],
                    "manifests": result["manifests"]}))
        return result

    def _repository(self, repo_id: int, name: str, rules: RetentionRules,
                    immutable: list[tuple[str, str]], now: float, apply: bool, actor: Actor
                    ) -> _Outcome:
        if not apply:
            with self.database.snapshot() as uow:
                return self._plan(uow, repo_id, name, rules, immutable, now)
        # Decided on the graph read under the repository's exclusive lock, applied in the same
        # transaction: no push slips between the plan and the untagging.
        with self.database.write() as uow:
            uow.repositories.lock(repo_id, exclusive=True)
            outcome = self._plan(uow, repo_id, name, rules, immutable, now)
            plan = outcome.plan
            uow.deletion.soft_delete(repo_id, plan.tags, actor.name)
            uow.graph.delete_manifests(plan.manifests)
            if plan.tags or plan.manifests:
                uow.emit(records(
                    *(TagDeleted(actor=actor, repository=name, tag=t, digest=d, by="retention")
                      for t, d in plan.tags),
                    *(ManifestDeleted(actor=actor, repository=name, digest=outcome.digests[i],
                                      by="retention") for i in plan.manifests),
                ))
            return outcome

    @staticmethod
    def _plan(uow: UnitOfWork, repo_id: int, name: str, rules: RetentionRules,
              immutable: list[tuple[str, str]], now: float) -> _Outcome:
        graph = uow.graph.graph(repo_id, name, with_pulls=True)
        plan = plan_repository(graph, rules, immutable, now)
        gone = [*plan.manifests, *plan.later]
        # The references are read before anything is deleted.
        return _Outcome(plan, {i: graph.manifests[i].size for i in gone},
                        uow.graph.blob_refs_of(gone),
                        {i: graph.manifests[i].digest for i in plan.manifests})

    def _summary(self, outcomes: list[_Outcome], apply: bool) -> dict[str, Any]:
        doomed = {i for o in outcomes for i in o.plan.manifests}
        later = {i for o in outcomes for i in o.plan.later}
        theirs = {d for o in outcomes for d in o.refs}
        with self.database.read() as uow:
            orphaned = (theirs - uow.graph.referenced_elsewhere(theirs, doomed | later)
                        if theirs else set())
            blob_bytes = sum(uow.graph.blob_sizes(orphaned).values())
        return {
            "applied": apply,
            "tags": sum(len(o.plan.tags) for o in outcomes),
            "manifests": len(doomed),
            "manifests_after_restore_window": len(later),
            "blobs": len(orphaned),
            "bytes_freed": blob_bytes + sum(sum(o.sizes.values()) for o in outcomes),
            "repositories": [{
                "repository": o.plan.repository,
                "tags": [{"tag": t, "digest": d} for t, d in o.plan.tags],
                "manifests": len(o.plan.manifests),
                "manifests_after_restore_window": len(o.plan.later),
            } for o in outcomes],
        }
