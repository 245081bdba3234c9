"""Lifecycle services: the hooks the push/pull/delete paths call (immutable tags, quotas, soft
delete, pull times, GC-safe commits) and the policy management the CLI and the API share."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..auth.authorizer import SERVER, Action, Authorizer, OpenAuthorizer
from ..auth.authorizer import namespace as ns_resource
from ..auth.identity import SYSTEM, Principal
from ..auth.scopes import namespace_of
from ..events.audit import AuditLog
from ..events.outbox import Outbox
from ..events.types import (
    Actor,
    ManifestDeleted,
    ManifestPulled,
    PolicyChanged,
    TagDeleted,
    TagRestored,
    records,
)
from ..gc.collector import GarbageCollector, GcReport
from ..metadata.lifecycle_store import LifecycleStore
from ..metadata.outbox_store import Emit, OutboxStore
from ..metadata.uow import Database, UnitOfWork
from ..oci.errors import (
    Denied,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    RegistryError,
)
from ..oci.reference import validate_name, validate_tag
from ..policy.immutability import (
    denial_message,
    matching_rule,
    split_exceptions,
    validate_pattern,
)
from ..policy.quota import UploadQuota
from ..policy.retention import RepoPlan, RetentionRules, plan_repository

log = logging.getLogger("moorage.lifecycle")
EVENT_FLUSH_SECONDS = 1.0  # pull events wait in memory at most this long
MAX_PENDING_PULLS = 100_000
SCHEDULER = Actor("scheduler", "system", None)


class NotFound(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "not found"


class Conflict(RegistryError):
    code, status, default_message = "DENIED", 409, "conflict"


class PullRecorder:
    """Pulls, kept in memory: a ManifestPulled event per pull, written at least every second,
    and the last pull time per tag and digest, every `flush_every` (both on a graceful stop)."""

    def __init__(self, store: LifecycleStore, flush_every: float) -> None:
        self.store = store
        self.flush_every = flush_every
        self._times_due = time.monotonic() + flush_every
        self._pending: dict[tuple[str, str], float] = {}
        self._events: list[dict[str, Any]] = []
        self._task: asyncio.Task | None = None

    def record(self, repository: str, reference: str, actor: Actor | None = None) -> None:
        """Note a pull (with an actor: also a pull event); O(1), no I/O."""
        if len(self._pending) < MAX_PENDING_PULLS:
            self._pending[(repository, reference)] = time.time()
        if actor is not None:
            if len(self._events) >= MAX_PENDING_PULLS:
                log.warning("pull events pile up; dropping one", extra={"repository": repository})
                return
            self._events.append(ManifestPulled(
                actor=actor, repository=repository, reference=reference,
                tag=None if reference.count(":") else reference,
                digest=reference if reference.count(":") else None,
            ).to_record())

    async def flush(self, times: bool = True) -> None:
        """Write the pull events noted so far (and with `times` the pull times), in one
        transaction."""
        batch: dict[tuple[str, str], float] = {}
        if times:
            batch, self._pending = self._pending, {}
            self._times_due = time.monotonic() + self.flush_every
        pulled, self._events = self._events, []
        if batch or pulled:
            try:
                await asyncio.to_thread(self.store.record_pulls, batch, pulled)
            except Exception:
                log.exception("could not record pulls", extra={"pulls": len(batch)})
                # Kept for the next flush: pull events are not to be lost on a passing error.
                self._events = pulled + self._events

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(min(self.flush_every, EVENT_FLUSH_SECONDS))
            await self.flush(times=time.monotonic() >= self._times_due)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.flush()


class LifecycleService:
    """Everything lifecycle, for the request path and for administrators."""

    def __init__(
        self,
        database: Database,
        store: LifecycleStore,
        collector: GarbageCollector,
        restore_window: float,
        audit: AuditLog | None = None,
        authorizer: Authorizer | None = None,
        pull_flush_interval: float = 5.0,
        upload_quota: UploadQuota | None = None,
    ) -> None:
        self.database = database
        self.store = store
        self.collector = collector
        self.restore_window = restore_window
        self.audit = audit
        self.authorizer = authorizer or OpenAuthorizer()  # no access control: allow all
        self.pulls = PullRecorder(store, pull_flush_interval)
        self.outbox = Outbox(OutboxStore(store.engine))
        # The upload service's cached quota figures, dropped when an administrator changes them.
        self.upload_quota = upload_quota or UploadQuota()

    # -- request-path hooks -------------------------------------------------------------------

    def check_tag_delete(self, repository: str, tag: str) -> None:
        """DENIED when `tag` is immutable."""
        namespace = namespace_of(repository)
        with self.database.read() as uow:
            rules = uow.policies.rules(namespace)
        pattern = matching_rule(tag, rules) if rules else None
        if pattern is not None:
            raise Denied(denial_message(tag, pattern, namespace, "deleted"),
                         detail={"tag": tag, "rule": pattern})

    @staticmethod
    def check_manifest_delete(uow: UnitOfWork, repository: str, digest: str) -> None:
        """DENIED when an immutable tag points at the manifest (inside the delete's unit of
        work)."""
        namespace = namespace_of(repository)
        rules = uow.policies.rules(namespace)
        if not rules:
            return
        for tag in uow.tags.tags_of(repository, digest):
            pattern = matching_rule(tag, rules)
            if pattern is not None:
                raise Denied(denial_message(tag, pattern, namespace, "deleted"),
                             detail={"tag": tag, "rule": pattern})

    def soft_delete_tag(self, repository: str, tag: str, actor: str | None = None,
                        events: Emit = None) -> bool:
        """Untag, restorable for the restore window."""
        return self.store.soft_delete_tag(repository, tag, actor, events)

    # -- administration -----------------------------------------------------------------------

    def _require(self, actor: Principal, namespace: str) -> None:
        self.authorizer.require(actor, Action.ADMIN_NAMESPACE, ns_resource(namespace),
                                "change its policies")

    def _require_server_admin(self, actor: Principal, doing: str) -> None:
        self.authorizer.require(actor, Action.ADMIN_SERVER, SERVER, doing)

    def _change(self, actor: Any, action: str, detail: dict[str, Any],
                repository: str | None = None) -> list[dict[str, Any]]:
        """The PolicyChanged event record of an administrator's change."""
        return records(PolicyChanged(actor=_actor(actor), repository=repository, action=action,
                                     detail=detail))

    def _audit(self, actor: Any, action: str, detail: dict[str, Any],
               repository: str | None = None) -> None:
        """Record a summary (retention applied, usage recounted) as an event of its own."""
        self.outbox.store.append_events(self._change(actor, action, detail, repository))

    def _rules(self, namespace: str | None) -> list[dict[str, Any]]:
        with self.database.read() as uow:
            return uow.policies.immutability_rules(namespace)

    def _retention_policies(self, namespace: str | None) -> list[dict[str, Any]]:
        with self.database.read() as uow:
            return uow.policies.retention(namespace)

    @staticmethod
    def _namespace(name: str) -> str:
        if "/" in name or not name:
            raise NameInvalid("a namespace is one path component")
        validate_name(name)
        return name

    def list_immutability(self, actor: Any, namespace: str) -> list[dict[str, Any]]:
        self._require(actor, self._namespace(namespace))
        return [
            {"pattern": r["pattern"], "exceptions": split_exceptions(r["exceptions"]),
             "created_by": r["created_by"], "created_at": r["created_at"]}
            for r in self._rules(namespace)
        ]

    def add_immutability(self, actor: Any, namespace: str, pattern: str,
                         exceptions: list[str] | str | None) -> None:
        self._require(actor, self._namespace(namespace))
        try:
            validate_pattern(pattern)
            excepted = [validate_pattern(e) for e in split_exceptions(exceptions)]
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
        with self.database.write() as uow:
            uow.policies.add_immutability_rule(namespace, pattern, ",".join(excepted),
                                               getattr(actor, "name", None))
            uow.emit(self._change(actor, "immutability.set", {
                "namespace": namespace, "pattern": pattern, "exceptions": excepted}))

    def remove_immutability(self, actor: Any, namespace: str, pattern: str) -> None:
        self._require(actor, self._namespace(namespace))
        change = self._change(actor, "immutability.remove",
                              {"namespace": namespace, "pattern": pattern})
        with self.database.write() as uow:
            removed = uow.policies.remove_immutability_rule(namespace, pattern)
            if removed:
                uow.emit(change)
        if not removed:
            raise NotFound(f"no immutability rule {pattern!r} in {namespace!r}")

    def set_quota(self, actor: Any, namespace: str, limit: int | None) -> None:
        self._require(actor, self._namespace(namespace))
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise RegistryError("a quota is a whole number of bytes ≥ 0")
        with self.database.write() as uow:
            uow.policies.set_quota(namespace, limit, getattr(actor, "name", None))
            uow.emit(self._change(actor, "quota.set",
                                  {"namespace": namespace, "limit_bytes": limit}))
        self.upload_quota.forget(namespace)

    def usage(self, actor: Any, namespace: str) -> dict[str, Any]:
        """Usage of a namespace and each of its repositories, with the quota if any."""
        self._require(actor, self._namespace(namespace))
        with self.database.read() as uow:
            return {
                "namespace": namespace,
                "usage_bytes": uow.usage.total(namespace),
                "limit_bytes": uow.policies.quota(namespace),
                "repositories": uow.usage.by_repository(namespace),
            }

    def recount_usage(self, actor: Any, apply: bool) -> dict[str, tuple[int, int]]:
        """Recount every namespace's usage from its manifests; {namespace: (stored, recounted)}
        where the stored total was wrong, and with `apply` store the recount (server admins)."""
        self._require_server_admin(actor, "recount usage")
        if apply:
            with self.database.write() as uow:
                wrong = uow.usage.repair(apply=True)
            self.upload_quota.forget()
        else:
            with self.database.read() as uow:
                wrong = uow.usage.repair(apply=False)
        if apply:
            self._audit(actor, "quota.recount", {"corrected": len(wrong)})
        return wrong

    def set_policy(self, actor: Any, namespace: str, repository: str | None,
                   rules: dict[str, Any] | None) -> dict[str, Any] | None:
        """Set (or with None remove) the retention policy of a namespace or one repository."""
        self._require(actor, self._namespace(namespace))
        if repository is not None:
            validate_name(repository)
            if namespace_of(repository) != namespace:
                raise RegistryError(f"repository {repository!r} is not in {namespace!r}")
        parsed = None
        if rules is not None:
            try:
                parsed = RetentionRules.from_dict(rules).to_dict()
            except ValueError as exc:
                raise RegistryError(str(exc)) from None
        with self.database.write() as uow:
            uow.policies.set_retention(namespace, repository, parsed, getattr(actor, "name", None))
            uow.emit(self._change(
                actor, "retention.set" if parsed is not None else "retention.remove",
                {"namespace": namespace, "repository": repository, "rules": parsed}))
        return parsed

    def policies(self, actor: Any, namespace: str) -> list[dict[str, Any]]:
        self._require(actor, self._namespace(namespace))
        return [
            {"namespace": p["namespace"], "repository": p["repository"], "rules": p["rules"],
             "created_by": p["created_by"], "updated_at": p["updated_at"]}
            for p in self._retention_policies(namespace)
        ]

    def _scopes(self, namespace: str | None) -> list[tuple[str, RetentionRules]]:
        """(repository, rules) for every repository a policy governs; a repository's own
        policy wins over its namespace's."""
        out = []
        by_ns: dict[str, dict[str | None, RetentionRules]] = {}
        for p in self._retention_policies(namespace):
            by_ns.setdefault(p["namespace"], {})[p["repository"]] = RetentionRules.from_dict(
                p["rules"])
        for ns, scoped in sorted(by_ns.items()):
            for repo in self.store.repositories_in(ns):
                rules = scoped.get(repo) or scoped.get(None)
                if rules is not None:
                    out.append((repo, rules))
        return out

    def retention(self, actor: Any, namespace: str | None, apply: bool) -> dict[str, Any]:
        """Plan (or apply) every retention policy of a namespace (None: all, for the schedule)."""
        if namespace is not None:
            self._require(actor, self._namespace(namespace))
        else:
            self._require_server_admin(actor, "run every namespace's policies")
        now = time.time()
        repos_out = []
        all_doomed: set[int] = set()
        later: set[int] = set()
        manifest_bytes = 0
        tags_total = manifests_total = 0
        rule_cache: dict[str, list[tuple[str, str]]] = {}
        repo_ids = {n: i for i, n in self.store.repository_ids()}
        all_refs: set[str] = set()
        for repo, rules in self._scopes(namespace):
            ns = namespace_of(repo)
            if ns not in rule_cache:
                rule_cache[ns] = [(r["pattern"], r["exceptions"])
                                  for r in self._rules(ns)]
            repo_id = repo_ids.get(repo)
            if repo_id is None:
                continue
            immutable = rule_cache[ns]
            plans: list[RepoPlan] = []
            sizes: dict[int, int] = {}
            refs: set[str] = set()

            def decide(graph, rules=rules, immutable=immutable, plans=plans, sizes=sizes,  # type: ignore[no-untyped-def]
                       refs=refs):
                plan = plan_repository(graph, rules, immutable, now)
                plans.append(plan)
                gone = [*plan.manifests, *plan.later]
                sizes.update({i: graph.manifests[i].size for i in gone})
                # Read before any delete (another connection: the pre-transaction state).
                refs.update(self.store.blob_refs_of(gone))
                return plan.tags, plan.manifests

            if apply:
                self.store.apply_retention(repo_id, repo, decide, getattr(actor, "name", None),
                                           _retention_events(_actor(actor), repo))
            else:
                decide(self.store.graph(repo_id, repo, with_pulls=True))
            plan = plans[0]
            if not plan.tags and not plan.manifests and not plan.later:
                continue
            all_doomed.update(plan.manifests)
            later.update(plan.later)
            all_refs.update(refs)
            manifest_bytes += sum(sizes.values())
            tags_total += len(plan.tags)
            manifests_total += len(plan.manifests)
            repos_out.append({
                "repository": repo,
                "tags": [{"tag": t, "digest": d} for t, d in plan.tags],
                "manifests": len(plan.manifests),
                "manifests_after_restore_window": len(plan.later),
            })
        freed_ids = all_doomed | later
        theirs = all_refs
        orphaned = theirs - self.store.referenced_elsewhere(theirs, freed_ids) if theirs else set()
        blob_bytes = sum(self.store.blob_sizes(orphaned).values())
        result = {
            "applied": apply,
            "tags": tags_total,
            "manifests": manifests_total,
            "manifests_after_restore_window": len(later),
            "blobs": len(orphaned),
            "bytes_freed": blob_bytes + manifest_bytes,
            "repositories": repos_out,
        }
        if apply:
            self._audit(actor, "retention.apply",
                        {"namespace": namespace, "tags": tags_total, "manifests": manifests_total})
        return result

    def deleted_tags(self, actor: Any, repository: str) -> list[dict[str, Any]]:
        self._require(actor, namespace_of(repository))
        return self.store.deleted_tags(repository, time.time() - self.restore_window)

    def restore_tag(self, actor: Any, repository: str, tag: str, force: bool = False) -> str:
        """Bring back a soft-deleted tag; returns the digest it points at again."""
        self._require(actor, namespace_of(repository))
        validate_name(repository)
        validate_tag(tag)
        try:
            digest = self.store.restore_tag(
                repository, tag, time.time() - self.restore_window, force,
                lambda d: records(TagRestored(actor=_actor(actor), repository=repository,
                                              tag=tag, digest=d)))
        except LookupError:
            raise ManifestUnknown(f"no restorable tag {tag!r} in {repository}") from None
        except FileExistsError as exc:
            raise Conflict(f"tag {tag!r} now points at {exc.args[0]}; use force to replace "
                           "it") from None
        except KeyError:
            raise ManifestInvalid(f"the manifest of {tag!r} is gone") from None
        return digest

    def gc(self, actor: Any, dry_run: bool, grace_period: float | None,
           trigger: str = "api") -> GcReport:
        """Run the collector now (server admins only when access control is on)."""
        self._require_server_admin(actor, "run garbage collection")
        return self.collector.run(dry_run=dry_run, grace_period=grace_period, trigger=trigger,
                                  actor=_actor(actor))

    def gc_runs(self, actor: Any, limit: int = 20) -> list[dict[str, Any]]:
        self._require_server_admin(actor, "see garbage collection runs")
        return self.store.runs(limit)

    def metrics(self) -> tuple[list[dict[str, Any]], tuple[int, int]]:
        """Recent runs (any process) and what is queued for storage deletion."""
        return self.store.runs(1000), self.store.pending_count()

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




def _actor(actor: Any) -> Actor:
    """The event actor of a principal (or of the CLI's and the scheduler's stand-ins)."""
    if isinstance(actor, Actor):
        return actor
    return Actor(getattr(actor, "name", None), getattr(actor, "kind", None),
                 getattr(actor, "address", None))


def _retention_events(actor: Actor, repository: str) -> Callable[..., list[dict[str, Any]]]:
    def build(tag_items: list[tuple[str, str]], victims: list[Any]) -> list[dict[str, Any]]:
        return records(
            *(TagDeleted(actor=actor, repository=repository, tag=t, digest=d, by="retention")
              for t, d in tag_items),
            *(ManifestDeleted(actor=actor, repository=repository, digest=v.digest,
                              by="retention") for v in victims),
        )

    return build


def make_lifecycle(settings: Any, database: Database, blob_store: Any, audit: AuditLog | None,
                   authorizer: Authorizer | None, upload_quota: UploadQuota | None = None
                   ) -> LifecycleService:
    """The lifecycle service wired from Settings (the server, the CLI and the tests share it)."""
    store = LifecycleStore(database.engine)
    collector = GarbageCollector(
        store,
        blob_store,
        grace_period=settings.gc_grace_period,
        upload_ttl=settings.upload_ttl,
        restore_window=settings.tag_restore_window,
        collect_untagged=settings.gc_untagged,
    )
    return LifecycleService(
        database,
        store,
        collector,
        restore_window=settings.tag_restore_window,
        audit=audit,
        authorizer=authorizer,
        pull_flush_interval=settings.pull_flush_interval,
        upload_quota=upload_quota,
    )
