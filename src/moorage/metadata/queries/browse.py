"""Read-only views for the web UI: repositories with their sizes and activity, tags with what
they point at, deleted tags and last pulls (bounded: every query has a limit)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from ..schema import (
    blobs,
    deleted_tags,
    manifests,
    pull_times,
    repositories,
    repository_blobs,
    tags,
)

if TYPE_CHECKING:
    from ..uow import UnitOfWork


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class BrowseQueries:
    """The UI's reads within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def repositories(self, search: str | None, after: str | None, limit: int
                     ) -> list[dict[str, Any]]:
        """Up to `limit` repositories by name (after `after`, containing `search`): name,
        created_at, tag count and last push (the newest tag move)."""
        last_push = (select(tags.c.repository_id, func.max(tags.c.updated_at).label("pushed"),
                            func.count().label("tags"))
                     .group_by(tags.c.repository_id).subquery())
        query = (select(repositories.c.name, repositories.c.created_at, last_push.c.pushed,
                        last_push.c.tags)
                 .outerjoin(last_push, last_push.c.repository_id == repositories.c.id)
                 .order_by(repositories.c.name).limit(limit))
        if search:
            query = query.where(repositories.c.name.like(_like(search), escape="\\"))
        if after is not None:
            query = query.where(repositories.c.name > after)
        return [{"name": n, "created_at": c, "last_push": p, "tags": t or 0}
                for n, c, p, t in self.conn.execute(query)]

    def sizes(self, names: Sequence[str]) -> dict[str, int]:
        """Bytes of the blobs each of `names` links (shared blobs count in each)."""
        if not names:
            return {}
        query = (select(repositories.c.name, func.coalesce(func.sum(blobs.c.size), 0))
                 .join(repository_blobs, repository_blobs.c.repository_id == repositories.c.id)
                 .join(blobs, blobs.c.digest == repository_blobs.c.digest)
                 .where(repositories.c.name.in_(list(names)))
                 .group_by(repositories.c.name))
        return {n: int(s) for n, s in self.conn.execute(query)}

    def last_pulls(self, names: Sequence[str]) -> dict[str, float]:
        """The newest pull of anything in each of `names`."""
        if not names:
            return {}
        query = (select(pull_times.c.repository, func.max(pull_times.c.pulled_at))
                 .where(pull_times.c.repository.in_(list(names)))
                 .group_by(pull_times.c.repository))
        return {n: float(t) for n, t in self.conn.execute(query)}

    def pulls_of(self, repository: str, limit: int = 5000) -> dict[str, float]:
        """reference (tag or digest) → its last pull, in one repository."""
        query = (select(pull_times.c.reference, pull_times.c.pulled_at)
                 .where(pull_times.c.repository == repository).limit(limit))
        return {r: float(t) for r, t in self.conn.execute(query)}

    def tags(self, repository: str, limit: int) -> list[dict[str, Any]] | None:
        """Tags of a repository with their manifest (digest, media type, size, content);
        None for an unknown repository."""
        repo_id = self.uow.repositories.id_of(repository)
        if repo_id is None:
            return None
        query = (select(tags.c.name, tags.c.manifest_digest, tags.c.updated_at,
                        manifests.c.media_type, manifests.c.size, manifests.c.content)
                 .join(manifests, (manifests.c.repository_id == tags.c.repository_id)
                       & (manifests.c.digest == tags.c.manifest_digest))
                 .where(tags.c.repository_id == repo_id)
                 .order_by(tags.c.updated_at.desc()).limit(limit))
        return [{"name": n, "digest": d, "pushed_at": u, "media_type": m, "size": s,
                 "content": bytes(c)} for n, d, u, m, s, c in self.conn.execute(query)]

    def manifests(self, repository: str, digests: Sequence[str]) -> dict[str, bytes]:
        """digest → content of those of `digests` stored in `repository`."""
        if not digests:
            return {}
        query = (select(manifests.c.digest, manifests.c.content)
                 .join(repositories, repositories.c.id == manifests.c.repository_id)
                 .where(repositories.c.name == repository,
                        manifests.c.digest.in_(list(digests))))
        return {d: bytes(c) for d, c in self.conn.execute(query)}

    def deleted_tags(self, repository: str, limit: int) -> list[dict[str, Any]]:
        """Soft-deleted tags of a repository, newest first."""
        query = (select(deleted_tags.c.name, deleted_tags.c.manifest_digest,
                        deleted_tags.c.deleted_at, deleted_tags.c.deleted_by)
                 .join(repositories, repositories.c.id == deleted_tags.c.repository_id)
                 .where(repositories.c.name == repository)
                 .order_by(deleted_tags.c.deleted_at.desc()).limit(limit))
        return [{"name": n, "digest": d, "deleted_at": t, "deleted_by": b}
                for n, d, t, b in self.conn.execute(query)]
