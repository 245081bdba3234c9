"""Lifecycle queries: immutability rules, retention policies, quotas, soft-deleted tags, pull
times, and the garbage collector's batched, re-checking transactions.

Every destructive statement re-states the whole condition that made its rows garbage, evaluated
under the write, so what a concurrent push does between "mark" and "sweep" is always seen.
SQLite: one writer at a time (the write lock). PostgreSQL: the collector locks the rows it
deletes (FOR UPDATE SKIP LOCKED, so it never waits on a push) and re-reads the condition after
taking the lock, while a push holds FOR SHARE on the blobs it references, row locks on the links
it refreshes and a shared lock on its repository row (see gc/collector.py for the protocol).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)

from . import usage
from .base import StoreBase
from .outbox_store import Emit, emit
from .schema import (
    blobs,
    deleted_tags,
    gc_runs,
    immutability_rules,
    manifest_references,
    manifests,
    pending_deletions,
    pull_times,
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


# A claim older than this is taken over by the next run (its claimer died).
CLAIM_TTL = 300.0


@dataclass(slots=True)
class ManifestNode:
    id: int
    digest: str
    subject: str | None
    created_at: float
    size: int
    children: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RepoGraph:
    """One repository's manifests, their child links, tags and soft-deleted tags."""

    repository_id: int
    name: str
    manifests: dict[int, ManifestNode]
    tags: dict[str, tuple[str, float]]  # name -> (digest, pushed at)
    deleted_tags: list[tuple[str, str, float]]  # (name, digest, deleted at)
    pulls: dict[str, float] = field(default_factory=dict)  # tag or digest -> last pull


def namespace_filter(namespace: str):  # type: ignore[no-untyped-def]
    """Repositories of a namespace: the namespace itself and everything under `namespace/`."""
    return or_(
        repositories.c.name == namespace,
        repositories.c.name.startswith(namespace + "/", autoescape=True),
    )


class LifecycleStore(StoreBase):
    """SQL for lifecycle policies and garbage collection."""

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

    def manifest_exists_in(self, conn: Connection, repo_id: int, digest: str) -> bool:
        return conn.execute(
            select(manifests.c.id).where(
                manifests.c.repository_id == repo_id, manifests.c.digest == digest
            )
        ).first() is not None

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

    # -- soft delete --------------------------------------------------------------------------

    def soft_delete_tag(self, repository: str, tag: str, actor: str | None,
                        events: Emit = None) -> bool:
        """Remove a tag and remember it for restore."""
        with self._write() as conn:
            repo_id = self._repo_id(conn, repository)
            if repo_id is None:
                return False
            digest = self.tag_digest_in(conn, repo_id, tag)
            if digest is None:
                return False
            if self._soft_delete(conn, repo_id, [(tag, digest)], actor):
                emit(conn, events, digest)
        return True

    def _soft_delete(
        self, conn: Connection, repo_id: int, items: Sequence[tuple[str, str]], actor: str | None
    ) -> int:
        now = time.time()
        removed = 0
        for name, digest in items:
            result = conn.execute(
                delete(tags).where(
                    tags.c.repository_id == repo_id,
                    tags.c.name == name,
                    tags.c.manifest_digest == digest,
                )
            )
            if result.rowcount:
                removed += 1
                conn.execute(
                    deleted_tags.insert().values(
                        repository_id=repo_id,
                        name=name,
                        manifest_digest=digest,
                        deleted_at=now,
                        deleted_by=actor,
                    )
                )
        return removed

    def deleted_tags(self, repository: str, since: float) -> list[dict[str, Any]]:
        """Restorable tags of a repository, newest first."""
        query = (
            select(deleted_tags.c.name, deleted_tags.c.manifest_digest, deleted_tags.c.deleted_at,
                   deleted_tags.c.deleted_by)
            .join(repositories, repositories.c.id == deleted_tags.c.repository_id)
            .where(repositories.c.name == repository, deleted_tags.c.deleted_at >= since)
            .order_by(deleted_tags.c.deleted_at.desc())
        )
        with self._read() as conn:
            return [
                {"tag": n, "digest": d, "deleted_at": t, "deleted_by": b}
                for n, d, t, b in conn.execute(query)
            ]

    def restore_tag(self, repository: str, tag: str, since: float, force: bool,
                    events: Emit = None) -> str:
        """Re-create the most recently deleted `tag`; returns its digest.

        Raises LookupError (nothing restorable), FileExistsError (the tag exists; use force),
        or KeyError (its manifest is gone).
        """
        with self._write() as conn:
            repo_id = self._repo_id(conn, repository)
            if repo_id is None:
                raise LookupError(tag)
            self._lock_repository(conn, repo_id, exclusive=False)
            row = conn.execute(
                select(deleted_tags.c.id, deleted_tags.c.manifest_digest)
                .where(
                    deleted_tags.c.repository_id == repo_id,
                    deleted_tags.c.name == tag,
                    deleted_tags.c.deleted_at >= since,
                )
                .order_by(deleted_tags.c.deleted_at.desc())
                .limit(1)
            ).first()
            if row is None:
                raise LookupError(tag)
            current = self.tag_digest_in(conn, repo_id, tag)
            if current is not None and current != row.manifest_digest and not force:
                raise FileExistsError(current)
            if not self.manifest_exists_in(conn, repo_id, row.manifest_digest):
                raise KeyError(row.manifest_digest)
            now = time.time()
            stmt = self._insert(tags).values(
                repository_id=repo_id, name=tag, manifest_digest=row.manifest_digest,
                updated_at=now,
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["repository_id", "name"],
                    set_={"manifest_digest": row.manifest_digest, "updated_at": now},
                )
            )
            conn.execute(delete(deleted_tags).where(deleted_tags.c.id == row.id))
            emit(conn, events, row.manifest_digest)
            return row.manifest_digest

    def purge_deleted_tags(self, before: float, dry_run: bool) -> int:
        """Forget soft-deleted tags whose restore window has passed."""
        cond = deleted_tags.c.deleted_at < before
        if dry_run:
            with self._read() as conn:
                return conn.execute(
                    select(func.count()).select_from(deleted_tags).where(cond)
                ).scalar_one()
        with self._write() as conn:
            return conn.execute(delete(deleted_tags).where(cond)).rowcount

    # -- pull times ---------------------------------------------------------------------------

    def record_pulls(self, pulls: dict[tuple[str, str], float], events: Emit = None) -> None:
        """Upsert the latest pull time per (repository, tag or digest), with pull events."""
        if not pulls:
            if events:
                with self._write() as conn:
                    emit(conn, events)
            return
        rows = [{"repository": r, "reference": ref, "pulled_at": t} for (r, ref), t in pulls.items()]
        stmt = self._insert(pull_times)
        with self._write() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["repository", "reference"],
                    set_={"pulled_at": func.max(pull_times.c.pulled_at, stmt.excluded.pulled_at)
                          if self.engine.dialect.name == "sqlite"
                          else func.greatest(pull_times.c.pulled_at, stmt.excluded.pulled_at)},
                ),
                rows,
            )
            emit(conn, events)

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

    def repositories_in(self, namespace: str) -> list[str]:
        with self._read() as conn:
            return list(
                conn.execute(
                    select(repositories.c.name)
                    .where(namespace_filter(namespace))
                    .order_by(repositories.c.name)
                ).scalars()
            )

    # -- graphs -------------------------------------------------------------------------------

    def repository_ids(self) -> list[tuple[int, str]]:
        with self._read() as conn:
            return [(i, n) for i, n in conn.execute(
                select(repositories.c.id, repositories.c.name).order_by(repositories.c.id))]

    def _graph(self, conn: Connection, repo_id: int, name: str, with_pulls: bool) -> RepoGraph:
        nodes = {
            i: ManifestNode(i, d, s, c, z)
            for i, d, s, c, z in conn.execute(
                select(
                    manifests.c.id,
                    manifests.c.digest,
                    manifests.c.subject_digest,
                    manifests.c.created_at,
                    manifests.c.size,
                ).where(manifests.c.repository_id == repo_id)
            )
        }
        for mid, digest in conn.execute(
            select(manifest_references.c.manifest_id, manifest_references.c.digest)
            .join(manifests, manifests.c.id == manifest_references.c.manifest_id)
            .where(manifests.c.repository_id == repo_id, manifest_references.c.kind == "manifest")
        ):
            nodes[mid].children.append(digest)
        tag_map = {
            n: (d, u)
            for n, d, u in conn.execute(
                select(tags.c.name, tags.c.manifest_digest, tags.c.updated_at).where(
                    tags.c.repository_id == repo_id
                )
            )
        }
        soft = [
            (n, d, t)
            for n, d, t in conn.execute(
                select(deleted_tags.c.name, deleted_tags.c.manifest_digest,
                       deleted_tags.c.deleted_at).where(deleted_tags.c.repository_id == repo_id)
            )
        ]
        graph = RepoGraph(repo_id, name, nodes, tag_map, soft)
        if with_pulls:
            graph.pulls = {
                ref: t
                for ref, t in conn.execute(
                    select(pull_times.c.reference, pull_times.c.pulled_at).where(
                        pull_times.c.repository == name
                    )
                )
            }
        return graph

    def graph(self, repo_id: int, name: str, with_pulls: bool = False) -> RepoGraph:
        """A consistent snapshot of one repository's manifest graph."""
        with self.engine.connect() as conn, conn.begin():
            return self._graph(conn, repo_id, name, with_pulls)

    def sweep_manifests(
        self, repo_id: int, name: str, decide: Callable[[RepoGraph], Iterable[int]],
        events: Emit = None,
    ) -> list[ManifestNode]:
        """Delete the manifests `decide` picks, deciding on a graph read inside the write
        transaction, so no concurrent push can slip between the decision and the delete."""
        with self._write() as conn:
            self._lock_repository(conn, repo_id, exclusive=True)
            graph = self._graph(conn, repo_id, name, with_pulls=False)
            victims = [graph.manifests[i] for i in decide(graph)]
            ids = [v.id for v in victims]
            usage.on_manifests_deleted(conn, ids)
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                conn.execute(
                    delete(manifest_references).where(manifest_references.c.manifest_id.in_(part))
                )
                conn.execute(delete(manifests).where(manifests.c.id.in_(part)))
            if victims:
                emit(conn, events, victims)
            return victims

    def apply_retention(
        self,
        repo_id: int,
        name: str,
        decide: Callable[[RepoGraph], tuple[list[tuple[str, str]], list[int]]],
        actor: str | None,
        events: Emit = None,
    ) -> tuple[int, list[ManifestNode]]:
        """Soft-delete the tags and delete the manifests `decide` picks, in one transaction."""
        with self._write() as conn:
            self._lock_repository(conn, repo_id, exclusive=True)
            graph = self._graph(conn, repo_id, name, with_pulls=True)
            tag_items, manifest_ids = decide(graph)
            removed = self._soft_delete(conn, repo_id, tag_items, actor)
            victims = [graph.manifests[i] for i in manifest_ids]
            ids = [v.id for v in victims]
            usage.on_manifests_deleted(conn, ids)
            if ids:
                conn.execute(
                    delete(manifest_references).where(manifest_references.c.manifest_id.in_(ids))
                )
                conn.execute(delete(manifests).where(manifests.c.id.in_(ids)))
            if tag_items or victims:
                emit(conn, events, tag_items, victims)
            return removed, victims

    def referenced_elsewhere(self, digests: Iterable[str], excluded_ids: set[int]) -> set[str]:
        """Those of `digests` still referenced by a manifest not in `excluded_ids`."""
        wanted = list(set(digests))
        found: set[str] = set()
        with self._read() as conn:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                for mid, digest in conn.execute(
                    select(manifest_references.c.manifest_id, manifest_references.c.digest).where(
                        manifest_references.c.digest.in_(part)
                    )
                ):
                    if mid not in excluded_ids:
                        found.add(digest)
        return found

    def blob_refs_of(self, manifest_ids: Iterable[int]) -> set[str]:
        ids = list(manifest_ids)
        out: set[str] = set()
        with self._read() as conn:
            for start in range(0, len(ids), 500):
                out.update(
                    conn.execute(
                        select(manifest_references.c.digest).where(
                            manifest_references.c.manifest_id.in_(ids[start : start + 500]),
                            manifest_references.c.kind == "blob",
                        )
                    ).scalars()
                )
        return out

    def blob_sizes(self, digests: Iterable[str]) -> dict[str, int]:
        wanted = list(set(digests))
        out: dict[str, int] = {}
        with self._read() as conn:
            for start in range(0, len(wanted), 500):
                out.update(
                    {
                        d: s
                        for d, s in conn.execute(
                            select(blobs.c.digest, blobs.c.size).where(
                                blobs.c.digest.in_(wanted[start : start + 500])
                            )
                        )
                    }
                )
        return out

    # -- blob sweep ---------------------------------------------------------------------------

    def _unreferenced(self, cutoff: float):  # type: ignore[no-untyped-def]
        """Blobs no manifest anywhere references, no fresh link protects, older than cutoff."""
        return and_(
            blobs.c.created_at < cutoff,
            ~exists().where(manifest_references.c.digest == blobs.c.digest),
            ~exists().where(
                repository_blobs.c.digest == blobs.c.digest,
                repository_blobs.c.created_at >= cutoff,
            ),
        )

    def blob_candidates(self, cutoff: float, after: str, limit: int) -> list[tuple[str, int]]:
        """A page of collectable blobs by digest after `after`."""
        query = (
            select(blobs.c.digest, blobs.c.size)
            .where(blobs.c.digest > after, self._unreferenced(cutoff))
            .order_by(blobs.c.digest)
            .limit(limit)
        )
        with self._read() as conn:
            return [(d, s) for d, s in conn.execute(query)]

    def delete_blobs(self, digests: Sequence[str], cutoff: float) -> list[tuple[str, str, int]]:
        """Delete the blob rows (and their stale links) that are still collectable, and queue
        their storage for deletion, in one transaction. Returns (digest, key, size) deleted."""
        wanted = list(digests)
        if not wanted:
            return []
        now = time.time()
        with self._write() as conn:
            # Lock first (PostgreSQL; skipping rows a push holds), then re-read the condition:
            # every push that committed before the lock is seen, every later one waits for us.
            locked = list(conn.execute(
                select(blobs.c.digest)
                .where(blobs.c.digest.in_(wanted), self._unreferenced(cutoff))
                .order_by(blobs.c.digest)
                .with_for_update(skip_locked=True)
            ).scalars())
            if not locked:
                return []
            links = [
                (r, d)
                for r, d in conn.execute(
                    select(repository_blobs.c.repository_id, repository_blobs.c.digest)
                    .where(repository_blobs.c.digest.in_(locked))
                    .order_by(repository_blobs.c.repository_id, repository_blobs.c.digest)
                    .with_for_update(skip_locked=True)
                )
            ]
            if links:
                conn.execute(
                    delete(repository_blobs).where(
                        tuple_(repository_blobs.c.repository_id, repository_blobs.c.digest).in_(
                            links
                        ),
                        repository_blobs.c.created_at < cutoff,
                        ~exists().where(manifest_references.c.digest == repository_blobs.c.digest),
                    )
                )
            # The whole condition again, now with "no link left" (a link skipped or refreshed
            # above keeps its blob); only the rows this statement deletes are queued.
            still = [
                (d, k, sz)
                for d, k, sz in conn.execute(
                    delete(blobs)
                    .where(
                        blobs.c.digest.in_(locked),
                        self._unreferenced(cutoff),
                        ~exists().where(repository_blobs.c.digest == blobs.c.digest),
                    )
                    .returning(blobs.c.digest, blobs.c.storage_key, blobs.c.size)
                )
            ]
            if still:
                conn.execute(
                    pending_deletions.insert(),
                    [
                        {"kind": "blob", "storage_key": k, "digest": d, "size": sz,
                         "queued_at": now}
                        for d, k, sz in still
                    ],
                )
            return still

    def _stale_link(self, cutoff: float):  # type: ignore[no-untyped-def]
        """Links older than cutoff that no manifest of their repository references."""
        referenced = (
            select(manifest_references.c.digest)
            .join(manifests, manifests.c.id == manifest_references.c.manifest_id)
            .where(
                manifests.c.repository_id == repository_blobs.c.repository_id,
                manifest_references.c.digest == repository_blobs.c.digest,
            )
            .exists()
        )
        return and_(repository_blobs.c.created_at < cutoff, ~referenced)

    def stale_links(self, cutoff: float, limit: int) -> list[tuple[int, str]]:
        """Old links no manifest in their repository references (the blob may live on elsewhere)."""
        query = (
            select(repository_blobs.c.repository_id, repository_blobs.c.digest)
            .where(self._stale_link(cutoff))
            .limit(limit)
        )
        with self._read() as conn:
            return [(r, d) for r, d in conn.execute(query)]

    def drop_links(self, pairs: Sequence[tuple[int, str]], cutoff: float) -> int:
        """Delete those links that are still stale: still old (a push or re-upload refreshes
        the links it relies on) and still referenced by no manifest of their repository."""
        if not pairs:
            return 0
        with self._write() as conn:
            locked = [
                (r, d)
                for r, d in conn.execute(
                    select(repository_blobs.c.repository_id, repository_blobs.c.digest)
                    .where(
                        tuple_(repository_blobs.c.repository_id, repository_blobs.c.digest).in_(
                            list(pairs)
                        ),
                        self._stale_link(cutoff),
                    )
                    .order_by(repository_blobs.c.repository_id, repository_blobs.c.digest)
                    .with_for_update(skip_locked=True)
                )
            ]
            if not locked:
                return 0
            return conn.execute(
                delete(repository_blobs).where(
                    tuple_(repository_blobs.c.repository_id, repository_blobs.c.digest).in_(
                        locked
                    ),
                    self._stale_link(cutoff),
                )
            ).rowcount

    # -- stale uploads ------------------------------------------------------------------------

    def _idle_upload(self, before: float, now: float):  # type: ignore[no-untyped-def]
        return and_(
            uploads.c.updated_at < before,
            or_(uploads.c.writer_until.is_(None), uploads.c.writer_until < now),
        )

    def stale_uploads(self, before: float, now: float, limit: int) -> list[tuple[str, str, int]]:
        query = (
            select(uploads.c.id, uploads.c.storage_handle, uploads.c.offset)
            .where(self._idle_upload(before, now))
            .limit(limit)
        )
        with self._read() as conn:
            return [(i, h, o) for i, h, o in conn.execute(query)]

    def expire_uploads(self, ids: Sequence[str], before: float, events: Emit = None
                       ) -> list[tuple[str, str, int]]:
        """Delete upload sessions still idle, queueing their storage for deletion."""
        now = time.time()
        with self._write() as conn:
            # Locked (PostgreSQL), skipping one a request is claiming right now.
            found = conn.execute(
                select(uploads.c.id, uploads.c.storage_handle, uploads.c.offset,
                       repositories.c.name)
                .join(repositories, repositories.c.id == uploads.c.repository_id)
                .where(uploads.c.id.in_(list(ids)), self._idle_upload(before, now))
                .with_for_update(skip_locked=True, of=uploads)
            ).all()
            rows = [(i, h, o) for i, h, o, _ in found]
            if rows:
                conn.execute(delete(uploads).where(
                    uploads.c.id.in_([r[0] for r in rows]), self._idle_upload(before, now)))
                conn.execute(
                    pending_deletions.insert(),
                    [
                        {"kind": "upload", "storage_key": h, "digest": None, "size": o,
                         "queued_at": now}
                        for _, h, o in rows
                    ],
                )
                emit(conn, events, [(i, r, o) for i, _, o, r in found])
            return rows

    # -- pending storage deletions ------------------------------------------------------------

    def pending_count(self) -> tuple[int, int]:
        with self._read() as conn:
            n, size = conn.execute(
                select(func.count(), func.coalesce(func.sum(pending_deletions.c.size), 0))
            ).one()
        return int(n), int(size)

    def claim_pending(
        self, limit: int, claimer: str, take_over: bool = False
    ) -> list[tuple[int, str, str]]:
        """Claim up to `limit` queued storage deletions: (id, kind, key) whose bytes the caller
        may now delete, outside any transaction, then confirm_pending.

        Skips rows another run holds or claimed less than CLAIM_TTL ago (all claimed rows with
        `take_over`: deleting bytes twice is harmless). A queued key that a blob row names again
        is dropped from the queue instead: that content is live.
        """
        now = time.time()
        query = select(
            pending_deletions.c.id, pending_deletions.c.kind, pending_deletions.c.storage_key
        )
        if not take_over:
            query = query.where(or_(pending_deletions.c.claimed_at.is_(None),
                                    pending_deletions.c.claimed_at < now - CLAIM_TTL))
        with self._write() as conn:
            rows = conn.execute(
                query.order_by(pending_deletions.c.id).limit(limit).with_for_update(
                    skip_locked=True)
            ).all()
            if not rows:
                return []
            keys = [r.storage_key for r in rows if r.kind == "blob"]
            live = set(
                conn.execute(
                    select(blobs.c.storage_key).where(blobs.c.storage_key.in_(keys))
                ).scalars()
            ) if keys else set()
            revived = [r.id for r in rows if r.kind == "blob" and r.storage_key in live]
            if revived:
                conn.execute(delete(pending_deletions).where(pending_deletions.c.id.in_(revived)))
            claimed = [(r.id, r.kind, r.storage_key) for r in rows if r.id not in set(revived)]
            if claimed:
                conn.execute(
                    update(pending_deletions)
                    .where(pending_deletions.c.id.in_([c[0] for c in claimed]))
                    .values(claimed_at=now, claimer=claimer)
                )
            return claimed

    def confirm_pending(self, ids: Sequence[int]) -> None:
        """Forget queued deletions whose storage is gone."""
        if ids:
            with self._write() as conn:
                conn.execute(delete(pending_deletions).where(pending_deletions.c.id.in_(list(ids))))

    # -- runs ----------------------------------------------------------------------

    def start_run(self, trigger: str, dry_run: bool) -> int:
        with self._write() as conn:
            return conn.execute(
                gc_runs.insert()
                .values(started_at=time.time(), trigger=trigger, dry_run=dry_run, status="running")
                .returning(gc_runs.c.id)
            ).scalar_one()

    def finish_run(self, run_id: int, status: str, result: dict[str, Any],
                   events: Emit = None) -> None:
        with self._write() as conn:
            conn.execute(
                update(gc_runs)
                .where(gc_runs.c.id == run_id)
                .values(finished_at=time.time(), status=status, result=json.dumps(result))
            )
            emit(conn, events)

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._read() as conn:
            out = []
            for r in conn.execute(select(gc_runs).order_by(gc_runs.c.id.desc()).limit(limit)):
                d = dict(r._mapping)
                d["result"] = json.loads(d["result"]) if d["result"] else None
                out.append(d)
            return out
