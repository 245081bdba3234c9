"""The lifecycle façade: the push path's hooks (immutable tags, quotas, GC-safe commits) and the
policy management the CLI and the API share, delegating soft delete, retention runs, pulls and
garbage collection to their own services (registry/deletion.py, registry/retention.py,
registry/pulls.py, gc/service.py) so callers keep one object."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from ..auth.authorizer import Authorizer, OpenAuthorizer
from ..auth.identity import SYSTEM, Principal
from ..auth.scopes import namespace_of
from ..events.types import Actor
from ..gc.collector import GarbageCollector, GcReport
from ..gc.service import GcService
from ..metadata.lifecycle_store import BytesGone, LifecycleStore, UploadGone
from ..metadata.outbox_store import Emit
from ..metadata.store import NewManifest
from ..metadata.uow import Database
from ..metadata.usage import blob_kind
from ..oci.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    Denied,
    ManifestBlobUnknown,
    ManifestInvalid,
    RegistryError,
)
from ..oci.reference import validate_name
from ..policy.immutability import (
    denial_message,
    matching_rule,
    split_exceptions,
    validate_pattern,
)
from ..policy.retention import RetentionRules
from .access import (
    NotFound,
    policy_changed,
    require_namespace_admin,
    require_server_admin,
    valid_namespace,
)
from .deletion import DeletionService
from .pulls import PullRecorder
from .retention import RetentionService

log = logging.getLogger("moorage.lifecycle")
QUOTA_CACHE_SECONDS = 2.0
SCHEDULER = Actor("scheduler", "system", None)


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class LifecycleService:
    """Everything lifecycle, for the request path and for administrators."""

    def __init__(
        self,
        store: LifecycleStore,
        database: Database,
        deletion: DeletionService,
        retention_runs: RetentionService,
        gc_service: GcService,
        pulls: PullRecorder,
        authorizer: Authorizer | None = None,
    ) -> None:
        self.store = store
        self.database = database
        self.deletion = deletion
        self.retention_runs = retention_runs
        self.gc_service = gc_service
        self.collector: GarbageCollector = gc_service.collector
        self.pulls = pulls
        self.authorizer = authorizer or OpenAuthorizer()  # no access control: allow all
        self._quota_cache: dict[str, tuple[int | None, int, float]] = {}

    # -- request-path hooks -------------------------------------------------------------------

    def manifest_guard(
        self, repository: str, record: NewManifest, tag_names: list[str], check_refs: bool,
        non_distributable: set[str], declared_sizes: dict[str, int] | None = None,
    ) -> Callable[[Connection, int], None]:
        """The checks a manifest PUT makes inside its write transaction."""
        namespace = namespace_of(repository)

        def guard(conn: Connection, repo_id: int) -> None:
            if check_refs:
                wanted = [d for d in record.blob_digests if d not in non_distributable]
                present = self.store.linked_sizes_in(conn, repo_id, wanted)
                missing = sorted(set(wanted) - set(present))
                if missing:
                    raise ManifestBlobUnknown(
                        f"blob {missing[0]} is not in {repository}", detail={"digest": missing[0]}
                    )
                for digest, size in (declared_sizes or {}).items():
                    if digest in present and present[digest] != size:
                        raise ManifestInvalid(
                            f"descriptor of {digest} says {size} bytes, the blob has "
                            f"{present[digest]}"
                        )
                children = self.store.present_manifests_in(conn, repo_id, record.child_digests)
                gone = sorted(set(record.child_digests) - children)
                if gone:
                    raise ManifestBlobUnknown(
                        f"manifest {gone[0]} is not in {repository}", detail={"digest": gone[0]}
                    )
            if tag_names:
                rules = self.store.rules_in(conn, namespace)
                if rules:
                    for tag in tag_names:
                        pattern = matching_rule(tag, rules)
                        if pattern is None:
                            continue
                        current = self.store.tag_digest_in(conn, repo_id, tag)
                        if current is not None and current != record.digest:
                            raise Denied(denial_message(tag, pattern, namespace, "moved"),
                                         detail={"tag": tag, "rule": pattern})
            limit = self.store.quota(namespace, conn)
            if limit is not None:
                # O(manifest): the namespace's total and the rows of this manifest's digests.
                added = self.store.new_bytes_in(
                    conn, namespace, blob_kind(record.blob_digests, record.child_digests),
                    record.digest, len(record.content),
                )
                if added:
                    used = self.store.namespace_usage(namespace, conn, lock=True)
                    if used + added > limit:
                        raise Denied(_quota_message(namespace, used, limit, added),
                                     detail={"namespace": namespace, "usage": used,
                                             "limit": limit, "requested": added})

        return guard

    def check_tag_delete(self, repository: str, tag: str) -> None:
        """DENIED when `tag` is immutable."""
        self.deletion.check_tag_delete(repository, tag)

    def check_manifest_delete(self, repository: str, digest: str) -> None:
        """DENIED when an immutable tag points at the manifest."""
        self.deletion.check_manifest_delete(repository, digest)

    def soft_delete_tag(self, repository: str, tag: str, actor: str | None = None,
                        events: Emit = None) -> bool:
        """Untag, restorable for the restore window."""
        factory = events if callable(events) else (lambda _d: events or [])
        return self.deletion.soft_delete_tag(repository, tag, actor, factory)

    def check_upload_quota(self, repository: str, total_bytes: int, digest: str | None = None
                           ) -> None:
        """Refuse an upload whose declared size alone would exceed the namespace quota (content
        the namespace already holds, known by `digest`, adds nothing)."""
        namespace = namespace_of(repository)
        now = time.monotonic()
        cached = self._quota_cache.get(namespace)
        if cached is None or cached[2] < now:
            limit = self.store.quota(namespace)
            used = self.store.namespace_usage(namespace) if limit is not None else 0
            cached = (limit, used, now + QUOTA_CACHE_SECONDS)
            self._quota_cache[namespace] = cached
            if len(self._quota_cache) > 10_000:
                self._quota_cache.clear()
        limit, used, _ = cached
        if limit is not None and used + total_bytes > limit:
            # Refuse only on fresh figures (the cache just saves work on the pass path).
            limit = self.store.quota(namespace)
            used = self.store.namespace_usage(namespace) if limit is not None else 0
            self._quota_cache[namespace] = (limit, used, now + QUOTA_CACHE_SECONDS)
        if limit is not None and used + total_bytes > limit:
            if digest is not None and self.store.held_in_namespace(namespace, digest):
                return
            raise Denied(_quota_message(namespace, used, limit, total_bytes),
                         detail={"namespace": namespace, "usage": used, "limit": limit,
                                 "requested": total_bytes})

    def commit_blob(self, repository: str, upload_id: str | None, digest: str, size: int,
                    key: str, reused: bool, events: Emit = None) -> str | None:
        """Record an upload's content GC-safely; None when `reused` content was collected
        meanwhile (commit the upload's own bytes instead)."""
        try:
            return self.store.commit_blob_checked(repository, upload_id, digest, size, key,
                                                  reused, events)
        except BytesGone:
            if reused:
                return None
            raise BlobUploadInvalid(
                f"{digest} was garbage-collected while this upload committed; push it again"
            ) from None
        except UploadGone:
            raise BlobUploadUnknown("the upload expired while it was being committed") from None

    # -- administration -----------------------------------------------------------------------

    def _require(self, actor: Principal, namespace: str) -> None:
        require_namespace_admin(self.authorizer, actor, namespace)

    def _require_server_admin(self, actor: Principal, doing: str) -> None:
        require_server_admin(self.authorizer, actor, doing)

    def _change(self, actor: Any, action: str, detail: dict[str, Any],
                repository: str | None = None) -> list[dict[str, Any]]:
        """The PolicyChanged event record of an administrator's change."""
        return policy_changed(actor, action, detail, repository)

    def _audit(self, actor: Any, action: str, detail: dict[str, Any],
               repository: str | None = None) -> None:
        """Record a summary (usage recounted) as an event of its own."""
        with self.database.write() as uow:
            uow.emit(self._change(actor, action, detail, repository))

    @staticmethod
    def _namespace(name: str) -> str:
        return valid_namespace(name)

    def list_immutability(self, actor: Any, namespace: str) -> list[dict[str, Any]]:
        self._require(actor, self._namespace(namespace))
        return [
            {"pattern": r["pattern"], "exceptions": split_exceptions(r["exceptions"]),
             "created_by": r["created_by"], "created_at": r["created_at"]}
            for r in self.store.immutability_rules(namespace)
        ]

    def add_immutability(self, actor: Any, namespace: str, pattern: str,
                         exceptions: list[str] | str | None) -> None:
        self._require(actor, self._namespace(namespace))
        try:
            validate_pattern(pattern)
            excepted = [validate_pattern(e) for e in split_exceptions(exceptions)]
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
        self.store.add_immutability_rule(
            namespace, pattern, ",".join(excepted), getattr(actor, "name", None),
            self._change(actor, "immutability.set",
                         {"namespace": namespace, "pattern": pattern, "exceptions": excepted}))

    def remove_immutability(self, actor: Any, namespace: str, pattern: str) -> None:
        self._require(actor, self._namespace(namespace))
        change = self._change(actor, "immutability.remove",
                              {"namespace": namespace, "pattern": pattern})
        if not self.store.remove_immutability_rule(namespace, pattern, change):
            raise NotFound(f"no immutability rule {pattern!r} in {namespace!r}")

    def set_quota(self, actor: Any, namespace: str, limit: int | None) -> None:
        self._require(actor, self._namespace(namespace))
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise RegistryError("a quota is a whole number of bytes ≥ 0")
        self.store.set_quota(namespace, limit, getattr(actor, "name", None),
                             self._change(actor, "quota.set",
                                          {"namespace": namespace, "limit_bytes": limit}))
        self._quota_cache.pop(namespace, None)

    def usage(self, actor: Any, namespace: str) -> dict[str, Any]:
        """Usage of a namespace and each of its repositories, with the quota if any."""
        self._require(actor, self._namespace(namespace))
        return {
            "namespace": namespace,
            "usage_bytes": self.store.namespace_usage(namespace),
            "limit_bytes": self.store.quota(namespace),
            "repositories": self.store.repository_usage(namespace),
        }

    def recount_usage(self, actor: Any, apply: bool) -> dict[str, tuple[int, int]]:
        """Recount every namespace's usage from its manifests; {namespace: (stored, recounted)}
        where the stored total was wrong, and with `apply` store the recount (server admins)."""
        self._require_server_admin(actor, "recount usage")
        wrong = self.store.repair_usage(apply)
        if apply:
            self._quota_cache.clear()
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
        self.store.set_policy(
            namespace, repository, parsed, getattr(actor, "name", None),
            self._change(actor, "retention.set" if parsed is not None else "retention.remove",
                         {"namespace": namespace, "repository": repository, "rules": parsed}))
        return parsed

    def policies(self, actor: Any, namespace: str) -> list[dict[str, Any]]:
        self._require(actor, self._namespace(namespace))
        return [
            {"namespace": p["namespace"], "repository": p["repository"], "rules": p["rules"],
             "created_by": p["created_by"], "updated_at": p["updated_at"]}
            for p in self.store.policies(namespace)
        ]

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


def _quota_message(namespace: str, used: int, limit: int, requested: int) -> str:
    return (
        f"quota exceeded for namespace {namespace!r}: using {human_bytes(used)} ({used} bytes) "
        f"of {human_bytes(limit)} ({limit} bytes); this push needs {requested} more bytes"
    )
