"""Tags: names for manifests within a repository."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, select

from ..base import Prebuilt, per_dialect
from ..rows import before_nul
from ..schema import repositories, tags

if TYPE_CHECKING:
    from ..uow import UnitOfWork


class TagQueries:
    """Tags within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def move(self, repo_id: int, names: Iterable[str], digest: str) -> None:
        """Point each of `names` at `digest` (created or moved)."""
        now = time.time()
        rows = [{"repository_id": repo_id, "name": name, "manifest_digest": digest,
                 "updated_at": now} for name in names]
        if rows:
            _MOVE.run(self.conn, rows[0] if len(rows) == 1 else rows)

    def delete(self, repo_id: int, name: str) -> bool:
        """Remove one tag (for good); the manifest stays."""
        result = self.conn.execute(
            delete(tags).where(tags.c.repository_id == repo_id, tags.c.name == name)
        )
        return result.rowcount > 0

    def list(self, repository: str, last: str | None, limit: int) -> builtins.list[str] | None:
        """Tag names in byte order after `last`; None when the repository is unknown."""
        repo_id = self.uow.repositories.id_of(repository)
        if repo_id is None:
            return None
        params: dict[str, object] = {"repo_id": repo_id, "limit": limit}
        if last is not None:
            params["last"] = before_nul(last)
        return [r[0] for r in _LIST[last is not None].rows(self.conn, params)]

    def digest_of(self, repo_id: int, name: str) -> str | None:
        """The digest tag `name` points at, None when there is no such tag."""
        return self.conn.execute(_DIGEST_OF, {"repo_id": repo_id, "name": name}
                                 ).scalar_one_or_none()

    def tags_of(self, repository: str, digest: str) -> builtins.list[str]:
        """Tags in `repository` pointing at `digest`."""
        query = (
            select(tags.c.name)
            .join(repositories, repositories.c.id == tags.c.repository_id)
            .where(repositories.c.name == repository, tags.c.manifest_digest == digest)
        )
        return list(self.conn.execute(query).scalars())


def _move(insert):  # type: ignore[no-untyped-def]
    stmt = insert(tags)
    return stmt.on_conflict_do_update(
        index_elements=["repository_id", "name"],
        set_={"manifest_digest": stmt.excluded.manifest_digest,
              "updated_at": stmt.excluded.updated_at},
    )


# Hot-path statements are built once: SQLAlchemy then reuses their compiled form and cache key.
_MOVE = Prebuilt(per_dialect(_move))
_DIGEST_OF = select(tags.c.manifest_digest).where(
    tags.c.repository_id == bindparam("repo_id"), tags.c.name == bindparam("name")
)


def _list_query(after: bool, dialect: str):  # type: ignore[no-untyped-def]
    # Byte order: SQLite's default; PostgreSQL would sort by the locale without "C".
    name = tags.c.name.collate("C") if dialect == "postgresql" else tags.c.name
    query = select(tags.c.name).where(tags.c.repository_id == bindparam("repo_id"))
    if after:
        query = query.where(name > bindparam("last"))
    return query.order_by(name).limit(bindparam("limit"))


# A full listing is thousands of rows: fetched by the driver at once, not row by row.
_LIST = {after: Prebuilt({d: _list_query(after, d) for d in ("sqlite", "postgresql")})
         for after in (False, True)}
