"""Soft-deleted tags: untagging into the restore list, listing, restoring and forgetting them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from ..schema import deleted_tags, manifests, repositories, tags

if TYPE_CHECKING:
    from ..uow import UnitOfWork


class NothingToRestore(LookupError):
    """No soft-deleted tag of that name within the restore window."""


class TagTaken(Exception):
    """The tag now points at another manifest (args[0]: its digest)."""


class ManifestGone(Exception):
    """The manifest a soft-deleted tag pointed at has been deleted (args[0]: its digest)."""


class DeletionQueries:
    """Soft delete within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def _tag_digest(self, repo_id: int, tag: str) -> str | None:
        return self.conn.execute(
            select(tags.c.manifest_digest).where(tags.c.repository_id == repo_id, tags.c.name == tag)
        ).scalar_one_or_none()

    def soft_delete_tag(self, repo_id: int, tag: str, actor: str | None) -> str | None:
        """Untag `tag` into the restore list; the digest it pointed at, None if no such tag."""
        digest = self._tag_digest(repo_id, tag)
        if digest is None:
            return None
        return digest if self.soft_delete(repo_id, [(tag, digest)], actor) else None

    def soft_delete(self, repo_id: int, items: Sequence[tuple[str, str]], actor: str | None
                    ) -> int:
        """Untag each (tag, digest) still pointing there; how many were untagged."""
        now = time.time()
        removed = 0
        for name, digest in items:
            result = self.conn.execute(
                delete(tags).where(
                    tags.c.repository_id == repo_id,
                    tags.c.name == name,
                    tags.c.manifest_digest == digest,
                )
            )
            if result.rowcount:
                removed += 1
                self.conn.execute(
                    deleted_tags.insert().values(
                        repository_id=repo_id, name=name, manifest_digest=digest,
                        deleted_at=now, deleted_by=actor,
                    )
                )
        return removed

    def deleted_tags(self, repository: str, since: float) -> list[dict[str, Any]]:
        """Restorable tags of a repository (deleted at or after `since`), newest first."""
        query = (
            select(deleted_tags.c.name, deleted_tags.c.manifest_digest, deleted_tags.c.deleted_at,
                   deleted_tags.c.deleted_by)
            .join(repositories, repositories.c.id == deleted_tags.c.repository_id)
            .where(repositories.c.name == repository, deleted_tags.c.deleted_at >= since)
            .order_by(deleted_tags.c.deleted_at.desc())
        )
        return [
            {"tag": n, "digest": d, "deleted_at": t, "deleted_by": b}
            for n, d, t, b in self.conn.execute(query)
        ]

    def restore_tag(self, repo_id: int, tag: str, since: float, force: bool) -> str:
        """Re-create the most recently deleted `tag`; returns its digest.

        Raises NothingToRestore, TagTaken (the tag exists elsewhere; use force) or ManifestGone.
        """
        row = self.conn.execute(
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
            raise NothingToRestore(tag)
        current = self._tag_digest(repo_id, tag)
        if current is not None and current != row.manifest_digest and not force:
            raise TagTaken(current)
        present = self.conn.execute(
            select(manifests.c.id).where(
                manifests.c.repository_id == repo_id, manifests.c.digest == row.manifest_digest
            )
        ).first()
        if present is None:
            raise ManifestGone(row.manifest_digest)
        now = time.time()
        stmt = self.uow.store._insert(tags).values(
            repository_id=repo_id, name=tag, manifest_digest=row.manifest_digest, updated_at=now,
        )
        self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["repository_id", "name"],
                set_={"manifest_digest": row.manifest_digest, "updated_at": now},
            )
        )
        self.conn.execute(delete(deleted_tags).where(deleted_tags.c.id == row.id))
        return str(row.manifest_digest)

    def count_expired(self, before: float) -> int:
        """Soft-deleted tags whose restore window ended before `before`."""
        return int(self.conn.execute(
            select(func.count()).select_from(deleted_tags).where(deleted_tags.c.deleted_at < before)
        ).scalar_one())

    def purge_deleted_tags(self, before: float) -> int:
        """Forget soft-deleted tags whose restore window ended before `before`."""
        return int(self.conn.execute(
            delete(deleted_tags).where(deleted_tags.c.deleted_at < before)
        ).rowcount)
