"""Blob rows and repository links: lookups, mounts, unlinks, and the GC-safe upload commit.

A push holds FOR SHARE on the blobs it references and row locks on the links it refreshes; the
collector re-checks under its own locks (see gc/collector.py for the protocol).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, select, update

from ..base import Prebuilt
from ..rows import BlobRow, BytesGone, UploadGone
from ..schema import blobs, pending_deletions, repositories, repository_blobs, uploads
from . import usage

if TYPE_CHECKING:
    from ..uow import UnitOfWork


class BlobQueries:
    """Blobs and links within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def find(self, digest: str) -> BlobRow | None:
        """The content record of a digest, whichever repositories hold it."""
        row = self.conn.execute(
            select(blobs.c.digest, blobs.c.size, blobs.c.storage_key).where(
                blobs.c.digest == digest
            )
        ).first()
        return BlobRow(*row) if row else None

    def repository_blob(self, repository: str, digest: str) -> BlobRow | None:
        """The blob if this repository holds a link to it."""
        row = self.conn.execute(_REPOSITORY_BLOB, {"repository": repository, "digest": digest}
                                ).first()
        return BlobRow(*row) if row else None

    def repositories_with_blob(self, digest: str, limit: int = 50) -> list[str]:
        """Names of repositories linking a blob (bounded)."""
        query = (
            select(repositories.c.name)
            .join(repository_blobs, repository_blobs.c.repository_id == repositories.c.id)
            .where(repository_blobs.c.digest == digest)
            .order_by(repositories.c.name)
            .limit(limit)
        )
        return list(self.conn.execute(query).scalars())

    def link(self, repository: str, digest: str) -> bool:
        """Make existing content readable through `repository` (cross-repository mount).

        False when the content is gone (garbage-collected since the caller looked it up).
        """
        # FOR SHARE (PostgreSQL): a concurrent collector cannot delete the row under the link.
        found = self.conn.execute(
            select(blobs.c.digest).where(blobs.c.digest == digest).with_for_update(read=True)
        ).first()
        if found is None:
            return False
        repo_id = self.uow.repositories.ensure(repository)
        self._link(repo_id, [digest], time.time())
        return True

    def unlink(self, repository: str, digest: str) -> bool:
        """Remove a repository's link to a blob; the bytes stay for other repositories and GC."""
        repo_id = self.uow.repositories.id_of(repository)
        if repo_id is None:
            return False
        result = self.conn.execute(
            delete(repository_blobs).where(
                repository_blobs.c.repository_id == repo_id,
                repository_blobs.c.digest == digest,
            )
        )
        return result.rowcount > 0

    def linked_sizes(self, repo_id: int, digests: Sequence[str]) -> dict[str, int]:
        """Sizes of those of `digests` the repository links, locking their rows against a
        concurrent sweep (PostgreSQL)."""
        if not digests:
            return {}
        params = {"repo_id": repo_id, "digests": sorted(set(digests))}
        return {d: s for d, s in _LINKED_SIZES.rows(self.conn, params)}

    def refresh_links(self, repo_id: int, digests: Iterable[str]) -> None:
        """Make the links a manifest relies on fresh, under row locks held until commit.

        A collector's link delete re-checks the age under the same lock, so it either ran first
        (the push then finds the link gone and is refused) or finds it fresh and keeps it.
        Only existing links are touched: a push never grants access to content.
        """
        wanted = sorted(set(digests))
        if not wanted:
            return
        params = {"repo_id": repo_id, "digests": wanted}
        if self.uow.dialect == "postgresql":
            # In digest order: pushes sharing layers lock them in the same order, never deadlock.
            self.conn.execute(_LOCK_LINKS, params)
        _REFRESH_LINKS.run(self.conn, {**params, "now": time.time()})

    def commit(self, repository: str, upload_id: str | None, digest: str, size: int,
               storage_key: str, reused: bool) -> str:
        """Record committed content, link it to the repository and end the upload, never
        recording a key whose bytes the collector has claimed for deletion.

        `reused`: `storage_key` is the key of content already recorded (the upload's own bytes
        were not kept); raises BytesGone when that content was collected meanwhile. Own keys are
        unique per commit (see storage/), so no queued deletion can name them. Raises UploadGone
        when the upload session expired meanwhile. Returns the key the digest is recorded under
        (another request's, when identical content was committed first).
        """
        conn = self.conn
        now = time.time()
        # FOR SHARE (PostgreSQL): a collector that has not deleted the row yet cannot.
        recorded = conn.execute(
            select(blobs.c.storage_key).where(blobs.c.digest == digest).with_for_update(read=True)
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
                self.uow.store._insert(blobs)
                .values(digest=digest, size=size, storage_key=storage_key, created_at=now)
                .on_conflict_do_nothing(index_elements=["digest"])
            )
            usage.on_blob_recorded(conn, digest, size)
            recorded = conn.execute(
                select(blobs.c.storage_key).where(blobs.c.digest == digest)
            ).scalar_one()
        self._link(self.uow.repositories.ensure(repository), [digest], now)
        if upload_id is not None:
            gone = conn.execute(delete(uploads).where(uploads.c.id == upload_id))
            if gone.rowcount == 0:
                raise UploadGone(upload_id)
        return recorded

    def _link(self, repo_id: int, digests: Iterable[str], now: float) -> None:
        rows = [{"repository_id": repo_id, "digest": d, "created_at": now} for d in digests]
        if rows:
            # A re-upload or re-mount refreshes the link: a fresh link is what protects a blob
            # from garbage collection until a manifest references it (see gc/collector.py).
            stmt = self.uow.store._insert(repository_blobs)
            self.conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["repository_id", "digest"],
                    set_={"created_at": stmt.excluded.created_at},
                ),
                rows,
            )


# Hot-path statements are built once: SQLAlchemy then reuses their compiled form and
# cache key.
_REPOSITORY_BLOB = (
    select(blobs.c.digest, blobs.c.size, blobs.c.storage_key)
    .select_from(
        repository_blobs.join(blobs, blobs.c.digest == repository_blobs.c.digest).join(
            repositories, repositories.c.id == repository_blobs.c.repository_id
        )
    )
    .where(
        repositories.c.name == bindparam("repository"),
        repository_blobs.c.digest == bindparam("digest"),
    )
)

_LINKED_SIZES = Prebuilt(
    select(blobs.c.digest, blobs.c.size)
    .join(repository_blobs, repository_blobs.c.digest == blobs.c.digest)
    .where(repository_blobs.c.repository_id == bindparam("repo_id"),
           blobs.c.digest.in_(bindparam("digests", expanding=True)))
    .with_for_update(read=True, of=blobs)
)
_LINKS = (repository_blobs.c.repository_id == bindparam("repo_id"),
          repository_blobs.c.digest.in_(bindparam("digests", expanding=True)))
_LOCK_LINKS = (
    select(repository_blobs.c.digest)
    .where(*_LINKS)
    .order_by(repository_blobs.c.digest)
    .with_for_update()
)
_REFRESH_LINKS = Prebuilt(
    update(repository_blobs).where(*_LINKS).values(created_at=bindparam("now")))
