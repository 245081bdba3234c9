"""Lifecycle queries: soft-deleted tags, pull times, retention, and the garbage collector's
batched, re-checking transactions (policy rows live in queries/policies.py).

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
from .queries.usage import namespace_filter
from .schema import (
    blobs,
    deleted_tags,
    gc_runs,
    manifest_references,
    manifests,
    pending_deletions,
    pull_times,
    repositories,
    repository_blobs,
    tags,
    uploads,
)

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



class LifecycleStore(StoreBase):
    """SQL for soft delete, pull times, retention and garbage collection."""

    # -- lookups the soft-delete and restore transactions share -------------------------------

    def tag_digest_in(self, conn: Connection, repo_id: int, tag: str) -> str | None:
        return conn.execute(
            select(tags.c.manifest_digest).where(tags.c.repository_id == repo_id, tags.c.name == tag)
        ).scalar_one_or_none()

    def manifest_exists_in(self, conn: Connection, repo_id: int, digest: str) -> bool:
        return conn.execute(
            select(manifests.c.id).where(
                manifests.c.repository_id == repo_id, manifests.c.digest == digest
            )
        ).first() is not None

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

    # -- retention scopes ---------------------------------------------------------------------

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
