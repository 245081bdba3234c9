"""What `moorage check` compares storage against: blob rows, the blobs manifests reference,
the storage keys rows, pending deletions and live uploads know, and the one repair it makes in
metadata (dropping a blob row whose bytes are gone, when nothing references it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, exists, func, select

from ..schema import (
    blobs,
    chunk_pack_intents,
    chunks,
    manifest_references,
    manifests,
    pending_deletions,
    repositories,
    repository_blobs,
    uploads,
)

if TYPE_CHECKING:
    from ..uow import UnitOfWork


# A manifest reference with its manifest and repository.
_REFERENCES = (manifest_references
               .join(manifests, manifests.c.id == manifest_references.c.manifest_id)
               .join(repositories, repositories.c.id == manifests.c.repository_id))


class IntegrityQueries:
    """The integrity check's statements within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def blob_count(self) -> int:
        """How many blob rows there are."""
        return int(self.conn.execute(select(func.count()).select_from(blobs)).scalar_one())

    def blob_page(self, after: str | None, limit: int) -> list[tuple[str, int, str]]:
        """(digest, size, storage key) of up to `limit` blob rows after digest `after`."""
        query = select(blobs.c.digest, blobs.c.size, blobs.c.storage_key).order_by(
            blobs.c.digest).limit(limit)
        if after is not None:
            query = query.where(blobs.c.digest > after)
        return [(r.digest, int(r.size), r.storage_key) for r in self.conn.execute(query)]

    def blob(self, digest: str) -> tuple[str, int, str] | None:
        """(digest, size, storage key) of blob `digest`, None without a row."""
        row = self.conn.execute(select(blobs.c.digest, blobs.c.size, blobs.c.storage_key)
                                .where(blobs.c.digest == digest)).first()
        return None if row is None else (row.digest, int(row.size), row.storage_key)

    def dangling_references(self, limit: int) -> list[tuple[str, str, str]]:
        """(repository, manifest digest, blob digest) of manifest references to a blob that
        has no row, at most `limit`."""
        query = (
            select(repositories.c.name, manifests.c.digest, manifest_references.c.digest)
            .select_from(_REFERENCES)
            .where(manifest_references.c.kind == "blob",
                   ~exists().where(blobs.c.digest == manifest_references.c.digest))
            .order_by(repositories.c.name, manifests.c.digest).limit(limit)
        )
        return [(r[0], r[1], r[2]) for r in self.conn.execute(query)]

    def referencing_manifests(self, digest: str, limit: int = 5) -> list[tuple[str, str]]:
        """(repository, manifest digest) of manifests referencing blob `digest`."""
        query = (
            select(repositories.c.name, manifests.c.digest)
            .select_from(_REFERENCES)
            .where(manifest_references.c.digest == digest)
            .order_by(repositories.c.name, manifests.c.digest).limit(limit)
        )
        return [(r[0], r[1]) for r in self.conn.execute(query)]

    def known_keys(self, keys: Sequence[str]) -> set[str]:
        """Those of `keys` a blob row, a chunk (its pack), a pack intent (a pack being written,
        judged on its own) or a pending deletion names."""
        if not keys:
            return set()
        rows = select(blobs.c.storage_key).where(blobs.c.storage_key.in_(keys))
        packs = select(chunks.c.pack_key).where(chunks.c.pack_key.in_(keys))
        intended = select(chunk_pack_intents.c.pack_key).where(
            chunk_pack_intents.c.pack_key.in_(keys))
        queued = select(pending_deletions.c.storage_key).where(
            pending_deletions.c.storage_key.in_(keys))
        return set(self.conn.execute(rows.union(packs, intended, queued)).scalars())

    def live_upload_ids(self) -> set[str]:
        """The ids of the upload sessions that exist."""
        return set(self.conn.execute(select(uploads.c.id)).scalars())

    def drop_unreferenced_blob(self, digest: str) -> bool:
        """Delete blob `digest`'s row and its repository links if no manifest references it
        (re-checked in the statements); True when the row went."""
        unreferenced = ~exists().where(manifest_references.c.digest == digest)
        self.conn.execute(delete(repository_blobs).where(repository_blobs.c.digest == digest,
                                                         unreferenced))
        gone = self.conn.execute(delete(blobs).where(
            blobs.c.digest == digest, unreferenced,
            ~exists().where(repository_blobs.c.digest == digest)))
        return bool(gone.rowcount)
