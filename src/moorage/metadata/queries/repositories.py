"""Repository rows: ids by name, creation, the catalog, and the row lock pushes and sweeps
share."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select

from ..base import Prebuilt, per_dialect
from ..rows import before_nul
from ..schema import repositories

if TYPE_CHECKING:
    from ..uow import UnitOfWork


class RepositoryQueries:
    """Repositories within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def id_of(self, name: str) -> int | None:
        """The id of repository `name`, None when it does not exist."""
        found: int | None = _ID_OF_FAST.scalar(self.conn, {"name": name})
        return found

    def ensure(self, name: str, shared_lock: bool = False) -> int:
        """The id of repository `name`, created if needed (idempotent under races); with
        `shared_lock`, the row's shared lock is taken by the same statement (as `lock`)."""
        query = _ID_OF_SHARED_FAST if shared_lock else _ID_OF_FAST
        existing: int | None = query.scalar(self.conn, {"name": name})
        if existing is not None:
            return existing
        self.conn.execute(_CREATE[self.uow.dialect], {"name": name, "created_at": time.time()})
        return int(query.scalar(self.conn, {"name": name}))

    def lock(self, repo_id: int, exclusive: bool) -> None:
        """Pushes share a repository's row lock, a GC sweep takes it alone, so a sweep decides on
        a graph no push is changing (PostgreSQL; on SQLite the write lock already does)."""
        self.uow.store._lock_repository(self.conn, repo_id, exclusive)

    def catalog(self, last: str | None, limit: int) -> list[str]:
        """Repository names in byte order after `last`, at most `limit`."""
        name = self.bytewise(repositories.c.name)
        query = select(repositories.c.name).order_by(name).limit(limit)
        if last is not None:
            query = query.where(name > before_nul(last))
        return list(self.conn.execute(query).scalars())

    def bytewise(self, column):  # type: ignore[no-untyped-def]
        """`column` ordered by bytes (SQLite's default; PostgreSQL sorts by locale otherwise)."""
        return column.collate("C") if self.uow.dialect == "postgresql" else column


# Hot-path statements are built once: SQLAlchemy then reuses their compiled form and cache key.
_ID_OF = select(repositories.c.id).where(repositories.c.name == bindparam("name"))
_ID_OF_SHARED = _ID_OF.with_for_update(read=True)
_ID_OF_FAST = Prebuilt(_ID_OF)
_ID_OF_SHARED_FAST = Prebuilt({"sqlite": _ID_OF, "postgresql": _ID_OF_SHARED})
_CREATE = per_dialect(
    lambda insert: insert(repositories).on_conflict_do_nothing(index_elements=["name"])
)
