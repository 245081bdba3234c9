"""Push-path lifecycle queries still to move onto the unit of work: immutability rules,
retention policies, quotas and usage, and the GC-safe blob commit.

Soft delete, pull times, repository graphs and the collector's statements live in
metadata/queries/{deletion,pulls,graph,gc}.py. A push holds FOR SHARE on the blobs it
references, row locks on the links it refreshes and a shared lock on its repository row (see
gc/collector.py for the protocol).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    delete,
    func,
    select,
)

from . import usage
from .base import StoreBase
from .outbox_store import Emit, emit
from .queries.graph import namespace_filter
from .schema import (
    blobs,
    immutability_rules,
    manifest_references,
    manifests,
    pending_deletions,
    quotas,
    repositories,
    repository_blobs,
    retention_policies,
    tags,
    uploads,
)


class BytesGone(Exception):
    """The content an upload was about to record has been garbage-collected meanwhile."""


class UploadGone(Exception):
    """The upload session expired (and its storage was queued for deletion) while committing."""


class LifecycleStore(StoreBase):
    """SQL of the push path's lifecycle checks and of policy rows (moving to queries/)."""

    # -- immutability -------------------------------------------------------------------------

    def immutability_rules(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Rules of one namespace, or all."""
        query = select(immutability_rules).order_by(
            immutability_rules.c.namespace, immutability_rules.c.pattern
        )
        if namespace is not None:
            query = query.where(immutability_rules.c.namespace == namespace)
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def rules_in(self, conn: Connection, namespace: str) -> list[tuple[str, str]]:
        """(pattern, exceptions) of a namespace, inside the caller's transaction."""
        return [
            (p, e)
            for p, e in conn.execute(
                select(immutability_rules.c.pattern, immutability_rules.c.exceptions).where(
                    immutability_rules.c.namespace == namespace
                )
            )
        ]

    def add_immutability_rule(
        self, namespace: str, pattern: str, exceptions: str, actor: str | None,
        events: Emit = None,
    ) -> None:
        """Create or replace the rule for `pattern` in `namespace`."""
        stmt = self._insert(immutability_rules).values(
            namespace=namespace,
            pattern=pattern,
            exceptions=exceptions,
            created_by=actor,
            created_at=time.time(),
        )
        with self._write() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["namespace", "pattern"],
                    set_={"exceptions": stmt.excluded.exceptions},
                )
            )
            emit(conn, events)

    def remove_immutability_rule(self, namespace: str, pattern: str, events: Emit = None
                                 ) -> bool:
        with self._write() as conn:
            result = conn.execute(
                delete(immutability_rules).where(
                    immutability_rules.c.namespace == namespace,
                    immutability_rules.c.pattern == pattern,
                )
            )
            if result.rowcount > 0:
                emit(conn, events)
        return result.rowcount > 0

    def tag_digest_in(self, conn: Connection, repo_id: int, tag: str) -> str | None:
        return conn.execute(
            select(tags.c.manifest_digest).where(tags.c.repository_id == repo_id, tags.c.name == tag)
        ).scalar_one_or_none()

    def tags_of(self, repository: str, digest: str) -> list[str]:
        """Tags in `repository` pointing at `digest`."""
        query = (
            select(tags.c.name)
            .join(repositories, repositories.c.id == tags.c.repository_id)
            .where(repositories.c.name == repository, tags.c.manifest_digest == digest)
        )
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    # -- manifest PUT guard pieces (run inside put_manifest's transaction) --------------------

    def linked_sizes_in(self, conn: Connection, repo_id: int, digests: Sequence[str]) -> dict[str, int]:
        """Sizes of linked blobs, locking their rows against a concurrent sweep (PostgreSQL)."""
        if not digests:
            return {}
        query = (
            select(blobs.c.digest, blobs.c.size)
            .join(repository_blobs, repository_blobs.c.digest == blobs.c.digest)
            .where(repository_blobs.c.repository_id == repo_id, blobs.c.digest.in_(set(digests)))
            .with_for_update(read=True, of=blobs)
        )
        return {d: s for d, s in conn.execute(query)}

    def present_manifests_in(self, conn: Connection, repo_id: int, digests: Sequence[str]) -> set[str]:
        if not digests:
            return set()
        query = select(manifests.c.digest).where(
            manifests.c.repository_id == repo_id, manifests.c.digest.in_(set(digests))
        )
        return set(conn.execute(query).scalars())

    # -- quotas -------------------------------------------------------------------------------

    def set_quota(self, namespace: str, limit: int | None, actor: str | None,
                  events: Emit = None) -> None:
        """Set (or with None, remove) a namespace's quota in bytes."""
        with self._write() as conn:
            if limit is None:
                conn.execute(delete(quotas).where(quotas.c.namespace == namespace))
                emit(conn, events)
                return
            stmt = self._insert(quotas).values(
                namespace=namespace, limit_bytes=limit, updated_by=actor, updated_at=time.time()
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["namespace"],
                    set_={"limit_bytes": limit, "updated_by": actor, "updated_at": time.time()},
                )
            )
            emit(conn, events)

    def quota(self, namespace: str, conn: Connection | None = None) -> int | None:
        query = select(quotas.c.limit_bytes).where(quotas.c.namespace == namespace)
        if conn is not None:
            return conn.execute(query).scalar_one_or_none()
        with self._read() as c:
            return c.execute(query).scalar_one_or_none()

    def list_quotas(self) -> dict[str, int]:
        with self._read() as conn:
            return {n: b for n, b in conn.execute(select(quotas.c.namespace, quotas.c.limit_bytes))}

    def _usage(self, conn: Connection, where) -> int:  # type: ignore[no-untyped-def]
        # Distinct content counts once however many repositories or manifests share it.
        scope = (
            select(manifests.c.id)
            .join(repositories, repositories.c.id == manifests.c.repository_id)
            .where(where)
        )
        blob_digests = (
            select(manifest_references.c.digest)
            .where(
                manifest_references.c.manifest_id.in_(scope),
                manifest_references.c.kind == "blob",
            )
            .distinct()
            .subquery()
        )
        blob_bytes = conn.execute(
            select(func.coalesce(func.sum(blobs.c.size), 0)).where(
                blobs.c.digest.in_(select(blob_digests.c.digest))
            )
        ).scalar_one()
        per_digest = (
            select(func.max(manifests.c.size).label("size"))
            .join(repositories, repositories.c.id == manifests.c.repository_id)
            .where(where)
            .group_by(manifests.c.digest)
            .subquery()
        )
        manifest_bytes = conn.execute(
            select(func.coalesce(func.sum(per_digest.c.size), 0))
        ).scalar_one()
        return int(blob_bytes) + int(manifest_bytes)

    def namespace_usage(self, namespace: str, conn: Connection | None = None,
                        lock: bool = False) -> int:
        """Bytes of content referenced by manifests in the namespace, shared content once:
        the stored total (one row), kept by the transactions that add and remove manifests."""
        if conn is not None:
            return usage.total(conn, namespace, lock=lock)
        with self._read() as c:
            return usage.total(c, namespace)

    def recount_usage(self, namespace: str) -> int:
        """The namespace's usage aggregated from its manifests (O(namespace); checks only)."""
        with self._read() as conn:
            return self._usage(conn, namespace_filter(namespace))

    def repair_usage(self, apply: bool) -> dict[str, tuple[int, int]]:
        """Recount every namespace; {namespace: (stored, recounted)} where they differ. With
        `apply`, the stored figures (and reference counts) are replaced by the recount."""
        if not apply:
            with self._read() as conn:
                stored = usage.stored_totals(conn)
                counted = usage.totals_of(usage.expected_content(conn))
            return {
                n: (stored.get(n, 0), counted.get(n, 0))
                for n in sorted(set(stored) | set(counted))
                if stored.get(n, 0) != counted.get(n, 0)
            }
        with self._write() as conn:
            return usage.rebuild(conn)

    def held_in_namespace(self, namespace: str, digest: str) -> bool:
        """True when a manifest of the namespace already references `digest`."""
        with self._read() as conn:
            return usage.holds(conn, namespace, digest)

    def repository_usage(self, namespace: str) -> dict[str, int]:
        """Bytes per repository of a namespace (content shared by repositories counts in each)."""
        with self._read() as conn:
            names = list(
                conn.execute(
                    select(repositories.c.name)
                    .where(namespace_filter(namespace))
                    .order_by(repositories.c.name)
                ).scalars()
            )
            return {n: self._usage(conn, repositories.c.name == n) for n in names}

    def new_bytes_in(
        self, conn: Connection, namespace: str, blob_digests: Sequence[str], manifest_digest: str,
        manifest_size: int,
    ) -> int:
        """Bytes a manifest would add to a namespace's usage (content not counted there yet)."""
        return usage.bytes_added(conn, namespace, blob_digests, manifest_digest, manifest_size)

    # -- uploads meeting the collector --------------------------------------------------------

    def commit_blob_checked(
        self,
        repository: str,
        upload_id: str | None,
        digest: str,
        size: int,
        storage_key: str,
        reused: bool,
        events: Emit = None,
    ) -> str:
        """Record committed content like MetadataStore.commit_blob, never recording a key whose
        bytes the collector has claimed for deletion.

        `reused`: `storage_key` is the key of content already recorded (the upload's own bytes
        were not kept); raises BytesGone when that content was collected meanwhile. Own keys are
        unique per commit (see storage/), so no queued deletion can name them. Raises UploadGone
        when the upload session expired meanwhile. Returns the key the digest is recorded under.
        """
        now = time.time()
        with self._write() as conn:
            # FOR SHARE (PostgreSQL): a collector that has not deleted the row yet cannot.
            recorded = conn.execute(
                select(blobs.c.storage_key)
                .where(blobs.c.digest == digest)
                .with_for_update(read=True)
            ).scalar_one_or_none()
            if recorded is None:
                queued = conn.execute(
                    select(pending_deletions.c.id, pending_deletions.c.claimed_at)
                    .where(pending_deletions.c.kind == "blob",
                           pending_deletions.c.storage_key == storage_key)
                    .with_for_update()
                ).all()
                if any(q.claimed_at is not None for q in queued) or (reused and not queued):
                    raise BytesGone(digest)
                if queued:
                    # Collected but not yet claimed: the bytes are still there; take them back.
                    conn.execute(delete(pending_deletions).where(
                        pending_deletions.c.id.in_([q.id for q in queued])))
                # Another node may commit the same digest at the same moment: one row wins.
                conn.execute(
                    self._insert(blobs)
                    .values(digest=digest, size=size, storage_key=storage_key, created_at=now)
                    .on_conflict_do_nothing(index_elements=["digest"])
                )
                usage.on_blob_recorded(conn, digest, size)
                recorded = conn.execute(
                    select(blobs.c.storage_key).where(blobs.c.digest == digest)
                ).scalar_one()
            repo_id = self._repo_id(conn, repository, create=True)
            self._fresh_link(conn, repo_id, digest, now)
            if upload_id is not None:
                gone = conn.execute(delete(uploads).where(uploads.c.id == upload_id))
                if gone.rowcount == 0:
                    raise UploadGone(upload_id)
            emit(conn, events)
            return recorded

    def _repo_id(self, conn: Connection, name: str, create: bool = False) -> int | None:
        if create:
            conn.execute(
                self._insert(repositories)
                .values(name=name, created_at=time.time())
                .on_conflict_do_nothing(index_elements=["name"])
            )
        return conn.execute(
            select(repositories.c.id).where(repositories.c.name == name)
        ).scalar_one_or_none()

    def _fresh_link(self, conn: Connection, repo_id: int | None, digest: str, now: float) -> None:
        stmt = self._insert(repository_blobs).values(
            repository_id=repo_id, digest=digest, created_at=now
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["repository_id", "digest"], set_={"created_at": now}
            )
        )

    # -- retention policies -------------------------------------------------------------------

    def set_policy(
        self, namespace: str, repository: str | None, rules: dict[str, Any] | None,
        actor: str | None, events: Emit = None,
    ) -> None:
        """Create, replace or (rules None) remove the policy of a namespace or repository."""
        scope = and_(
            retention_policies.c.namespace == namespace,
            retention_policies.c.repository.is_(None)
            if repository is None
            else retention_policies.c.repository == repository,
        )
        with self._write() as conn:
            conn.execute(delete(retention_policies).where(scope))
            if rules is not None:
                conn.execute(
                    retention_policies.insert().values(
                        namespace=namespace,
                        repository=repository,
                        rules=json.dumps(rules, sort_keys=True),
                        created_by=actor,
                        updated_at=time.time(),
                    )
                )
            emit(conn, events)

    def policies(self, namespace: str | None = None) -> list[dict[str, Any]]:
        query = select(retention_policies).order_by(
            retention_policies.c.namespace, retention_policies.c.repository
        )
        if namespace is not None:
            query = query.where(retention_policies.c.namespace == namespace)
        with self._read() as conn:
            out = []
            for r in conn.execute(query):
                d = dict(r._mapping)
                d["rules"] = json.loads(d["rules"])
                out.append(d)
            return out
