"""Upstream registries, pull-through cache namespaces, the revalidation times of cached tags,
and the leases that let one worker fetch a cold blob while the others wait."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ...oci.errors import NameTaken
from ..schema import cache_fetches as f
from ..schema import cache_namespaces as c
from ..schema import cache_tag_checks as t
from ..schema import cache_tag_lists as tl
from ..schema import repositories as r
from ..schema import upstreams as u

if TYPE_CHECKING:
    from ..uow import UnitOfWork


class CacheQueries:
    """The `upstreams`, `cache_namespaces`, `cache_tag_checks` and `cache_fetches` tables."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.conn = uow.conn
        self._insert = uow.store._insert

    def _add(self, table: Any, values: dict[str, Any]) -> int:
        try:
            with self.conn.begin_nested():
                key = self.conn.execute(table.insert().values(**values)).inserted_primary_key
        except IntegrityError:
            raise NameTaken(values["name"]) from None
        assert key is not None
        return int(key[0])

    # -- upstreams ----------------------------------------------------------------------------

    def add_upstream(self, values: dict[str, Any]) -> int:
        """Insert an upstream; NameTaken when its name is in use."""
        if self.upstream(values["name"]) is not None:
            raise NameTaken(values["name"])
        return self._add(u, values)

    def upstream(self, name: str) -> dict[str, Any] | None:
        row = self.conn.execute(select(u).where(u.c.name == name)).first()
        return dict(row._mapping) if row else None

    def upstream_by_id(self, upstream_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(select(u).where(u.c.id == upstream_id)).first()
        return dict(row._mapping) if row else None

    def upstreams(self) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in self.conn.execute(select(u).order_by(u.c.name))]

    def remove_upstream(self, upstream_id: int) -> None:
        self.conn.execute(delete(u).where(u.c.id == upstream_id))

    # -- cache namespaces ---------------------------------------------------------------------

    def add_cache(self, values: dict[str, Any]) -> int:
        """Insert a cache namespace; NameTaken when its name or namespace is in use."""
        taken = self.conn.execute(select(c.c.id).where(
            (c.c.name == values["name"]) | (c.c.namespace == values["namespace"]))).first()
        if taken is not None:
            raise NameTaken(values["name"])
        return self._add(c, values)

    def caches(self) -> list[dict[str, Any]]:
        """Every cache namespace with its upstream's name and URL."""
        query = (select(c, u.c.name.label("upstream"), u.c.url.label("upstream_url"))
                 .join(u, u.c.id == c.c.upstream_id).order_by(c.c.name))
        return [dict(r._mapping) for r in self.conn.execute(query)]

    def caches_of(self, upstream_id: int) -> list[str]:
        rows = self.conn.execute(select(c.c.name).where(c.c.upstream_id == upstream_id))
        return [r.name for r in rows]

    def namespace_has_repositories(self, namespace: str) -> bool:
        """Whether any repository exists under `namespace/`."""
        pattern = namespace.replace("_", "\\_") + "/%"
        row = self.conn.execute(select(r.c.id).where(r.c.name.like(pattern, escape="\\"))
                                .limit(1)).first()
        return row is not None

    def remove_cache(self, name: str) -> bool:
        return self.conn.execute(delete(c).where(c.c.name == name)).rowcount == 1

    # -- tag revalidation ---------------------------------------------------------------------

    def tag_checked(self, repository: str, tag: str) -> tuple[str, float] | None:
        """(digest, when) the upstream last confirmed a cached tag."""
        row = self.conn.execute(select(t.c.digest, t.c.checked_at).where(
            t.c.repository == repository, t.c.tag == tag)).first()
        return (row.digest, float(row.checked_at)) if row else None

    def check_tag(self, repository: str, tag: str, digest: str, now: float) -> None:
        """Record that the upstream's `tag` named `digest` at `now`."""
        stmt = self._insert(t).values(repository=repository, tag=tag, digest=digest,
                                      checked_at=now)
        self.conn.execute(stmt.on_conflict_do_update(
            index_elements=["repository", "tag"], set_={"digest": digest, "checked_at": now}))

    def tag_list(self, repository: str) -> tuple[list[str], float] | None:
        """(tags, when) of the upstream's tag list last fetched for a cache repository."""
        row = self.conn.execute(select(tl.c.tags, tl.c.fetched_at).where(
            tl.c.repository == repository)).first()
        return (json.loads(row.tags), float(row.fetched_at)) if row else None

    def keep_tag_list(self, repository: str, tags: list[str], now: float) -> None:
        """Remember the upstream's tag list of a cache repository."""
        text = json.dumps(tags)
        stmt = self._insert(tl).values(repository=repository, tags=text, fetched_at=now)
        self.conn.execute(stmt.on_conflict_do_update(
            index_elements=["repository"], set_={"tags": text, "fetched_at": now}))

    # -- fetch leases -------------------------------------------------------------------------

    def take_fetch(self, key: str, owner: str, now: float, until: float) -> bool:
        """Hold the fetch of `key` until `until`; False while another owner's lease is live."""
        stmt = self._insert(f).values(key=key, owner=owner, lease_until=until)
        self.conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
        taken = self.conn.execute(update(f).where(
            f.c.key == key, (f.c.owner == owner) | (f.c.lease_until < now))
            .values(owner=owner, lease_until=until))
        return taken.rowcount == 1

    def release_fetch(self, key: str, owner: str) -> None:
        self.conn.execute(delete(f).where(f.c.key == key, f.c.owner == owner))

    def fetch_held(self, key: str, now: float) -> bool:
        """Whether someone holds a live lease on the fetch of `key`."""
        row = self.conn.execute(select(f.c.lease_until).where(f.c.key == key)).first()
        return row is not None and float(row.lease_until) >= now
