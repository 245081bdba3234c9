"""The garbage collector's statements: candidates read without locks, then deletes that
re-state the whole condition under the write (see gc/collector.py for the protocol).

SQLite: one writer at a time. PostgreSQL: rows are locked FOR UPDATE SKIP LOCKED (the collector
never waits on a push) and the condition re-read after the lock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, exists, func, or_, select, tuple_, update

from ..schema import (
    blobs,
    gc_runs,
    manifest_references,
    manifests,
    pending_deletions,
    repositories,
    repository_blobs,
    uploads,
)
from .chunks import CHUNKED_PREFIX

if TYPE_CHECKING:
    from ..uow import UnitOfWork

# A claim older than this is taken over by the next run (its claimer died).
CLAIM_TTL = 300.0


def _unreferenced(cutoff: float) -> Any:
    """Blobs no manifest anywhere references, no fresh link protects, older than cutoff."""
    return and_(
        blobs.c.created_at < cutoff,
        ~exists().where(manifest_references.c.digest == blobs.c.digest),
        ~exists().where(
            repository_blobs.c.digest == blobs.c.digest,
            repository_blobs.c.created_at >= cutoff,
        ),
    )


def _stale_link(cutoff: float) -> Any:
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


def _idle_upload(before: float, now: float) -> Any:
    return and_(
        uploads.c.updated_at < before,
        or_(uploads.c.writer_until.is_(None), uploads.c.writer_until < now),
    )


class GcQueries:
    """Collector statements within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    # -- blobs --------------------------------------------------------------------------------

    def blob_candidates(self, cutoff: float, after: str, limit: int) -> list[tuple[str, int]]:
        """A page of collectable blobs (digest, size) by digest after `after`."""
        query = (
            select(blobs.c.digest, blobs.c.size)
            .where(blobs.c.digest > after, _unreferenced(cutoff))
            .order_by(blobs.c.digest)
            .limit(limit)
        )
        return [(d, s) for d, s in self.conn.execute(query)]

    def delete_blobs(self, digests: Sequence[str], cutoff: float) -> list[tuple[str, str, int]]:
        """Delete the blob rows (and their stale links) that are still collectable and queue
        their storage for deletion. Returns (digest, key, size) deleted."""
        wanted = list(digests)
        if not wanted:
            return []
        conn = self.conn
        # Lock first (PostgreSQL; skipping rows a push holds), then re-read the condition:
        # every push that committed before the lock is seen, every later one waits for us.
        locked = list(conn.execute(
            select(blobs.c.digest)
            .where(blobs.c.digest.in_(wanted), _unreferenced(cutoff))
            .order_by(blobs.c.digest)
            .with_for_update(skip_locked=True)
        ).scalars())
        if not locked:
            return []
        links = [(r, d) for r, d in conn.execute(
            select(repository_blobs.c.repository_id, repository_blobs.c.digest)
            .where(repository_blobs.c.digest.in_(locked))
            .order_by(repository_blobs.c.repository_id, repository_blobs.c.digest)
            .with_for_update(skip_locked=True)
        )]
        if links:
            conn.execute(delete(repository_blobs).where(
                tuple_(repository_blobs.c.repository_id, repository_blobs.c.digest).in_(links),
                repository_blobs.c.created_at < cutoff,
                ~exists().where(manifest_references.c.digest == repository_blobs.c.digest),
            ))
        # The whole condition again, now with "no link left" (a link skipped or refreshed
        # above keeps its blob); only the rows this statement deletes are queued.
        still = [(d, k, sz) for d, k, sz in conn.execute(
            delete(blobs)
            .where(
                blobs.c.digest.in_(locked),
                _unreferenced(cutoff),
                ~exists().where(repository_blobs.c.digest == blobs.c.digest),
            )
            .returning(blobs.c.digest, blobs.c.storage_key, blobs.c.size)
        )]
        if still:
            # A recipe goes with its blob; an object chunks still live in stays as their pack
            # (the chunk step queues it once no chunk row points into it).
            self.uow.chunks.forget_recipes([d for d, _, _ in still])
            packs = self.uow.chunks.packs_in_use(k for _, k, _ in still)
            now = time.time()
            queued = [{"kind": "blob", "storage_key": k, "digest": d, "size": sz,
                       "queued_at": now}
                      for d, k, sz in still
                      if k not in packs and not k.startswith(CHUNKED_PREFIX)]
            if queued:
                conn.execute(pending_deletions.insert(), queued)
        return still

    # -- links --------------------------------------------------------------------------------

    def stale_links(self, cutoff: float, limit: int) -> list[tuple[int, str]]:
        """Old links no manifest in their repository references (the blob may live on)."""
        query = (
            select(repository_blobs.c.repository_id, repository_blobs.c.digest)
            .where(_stale_link(cutoff))
            .limit(limit)
        )
        return [(r, d) for r, d in self.conn.execute(query)]

    def drop_links(self, pairs: Sequence[tuple[int, str]], cutoff: float) -> int:
        """Delete those links that are still stale: still old (a push or re-upload refreshes
        the links it relies on) and still referenced by no manifest of their repository."""
        if not pairs:
            return 0
        key = tuple_(repository_blobs.c.repository_id, repository_blobs.c.digest)
        locked = [(r, d) for r, d in self.conn.execute(
            select(repository_blobs.c.repository_id, repository_blobs.c.digest)
            .where(key.in_(list(pairs)), _stale_link(cutoff))
            .order_by(repository_blobs.c.repository_id, repository_blobs.c.digest)
            .with_for_update(skip_locked=True)
        )]
        if not locked:
            return 0
        return int(self.conn.execute(
            delete(repository_blobs).where(key.in_(locked), _stale_link(cutoff))
        ).rowcount)

    # -- uploads ------------------------------------------------------------------------------

    def stale_uploads(self, before: float, now: float, limit: int) -> list[tuple[str, str, int]]:
        """(id, storage handle, offset) of upload sessions idle since `before`, unleased."""
        query = (
            select(uploads.c.id, uploads.c.storage_handle, uploads.c.offset)
            .where(_idle_upload(before, now))
            .limit(limit)
        )
        return [(i, h, o) for i, h, o in self.conn.execute(query)]

    def expire_uploads(self, ids: Sequence[str], before: float
                       ) -> list[tuple[str, str, int, str]]:
        """Delete the upload sessions still idle, queueing their storage for deletion; returns
        (id, storage handle, offset, repository) of each."""
        now = time.time()
        # Locked (PostgreSQL), skipping one a request is claiming right now.
        found = [(i, h, o, r) for i, h, o, r in self.conn.execute(
            select(uploads.c.id, uploads.c.storage_handle, uploads.c.offset, repositories.c.name)
            .join(repositories, repositories.c.id == uploads.c.repository_id)
            .where(uploads.c.id.in_(list(ids)), _idle_upload(before, now))
            .with_for_update(skip_locked=True, of=uploads)
        )]
        if found:
            self.conn.execute(delete(uploads).where(
                uploads.c.id.in_([f[0] for f in found]), _idle_upload(before, now)))
            self.conn.execute(pending_deletions.insert(), [
                {"kind": "upload", "storage_key": h, "digest": None, "size": o, "queued_at": now}
                for _, h, o, _ in found
            ])
        return found

    # -- pending storage deletions ------------------------------------------------------------

    def pending_count(self) -> tuple[int, int]:
        """(rows, bytes) queued for storage deletion."""
        n, size = self.conn.execute(
            select(func.count(), func.coalesce(func.sum(pending_deletions.c.size), 0))
        ).one()
        return int(n), int(size)

    def claim_pending(self, limit: int, claimer: str, take_over: bool = False
                      ) -> list[tuple[int, str, str]]:
        """Claim up to `limit` queued storage deletions: (id, kind, key) whose bytes the caller
        may delete once this transaction committed, then confirm_pending.

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
        rows = self.conn.execute(
            query.order_by(pending_deletions.c.id).limit(limit).with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return []
        keys = [r.storage_key for r in rows if r.kind == "blob"]
        live = set(self.conn.execute(
            select(blobs.c.storage_key).where(blobs.c.storage_key.in_(keys))
        ).scalars()) | self.uow.chunks.packs_in_use(keys) if keys else set()
        revived = {r.id for r in rows if r.kind == "blob" and r.storage_key in live}
        if revived:
            self.conn.execute(delete(pending_deletions).where(
                pending_deletions.c.id.in_(list(revived))))
        claimed = [(r.id, r.kind, r.storage_key) for r in rows if r.id not in revived]
        if claimed:
            self.conn.execute(
                update(pending_deletions)
                .where(pending_deletions.c.id.in_([c[0] for c in claimed]))
                .values(claimed_at=now, claimer=claimer)
            )
        return claimed

    def confirm_pending(self, ids: Sequence[int]) -> None:
        """Forget queued deletions whose storage is gone."""
        if ids:
            self.conn.execute(delete(pending_deletions).where(
                pending_deletions.c.id.in_(list(ids))))

    # -- runs ---------------------------------------------------------------------------------

    def start_run(self, trigger: str, dry_run: bool) -> int:
        """Record a run as started; its id."""
        return int(self.conn.execute(
            gc_runs.insert()
            .values(started_at=time.time(), trigger=trigger, dry_run=dry_run, status="running")
            .returning(gc_runs.c.id)
        ).scalar_one())

    def finish_run(self, run_id: int, status: str, result: dict[str, Any]) -> None:
        """Record a run's end, status and report."""
        self.conn.execute(
            update(gc_runs)
            .where(gc_runs.c.id == run_id)
            .values(finished_at=time.time(), status=status, result=json.dumps(result))
        )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent runs, newest first, reports decoded."""
        out = []
        for r in self.conn.execute(select(gc_runs).order_by(gc_runs.c.id.desc()).limit(limit)):
            d = dict(r._mapping)
            d["result"] = json.loads(d["result"]) if d["result"] else None
            out.append(d)
        return out
