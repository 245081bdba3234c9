"""Namespace usage: totals kept, maintained inside the transactions that add or remove
manifests, so a quota check reads one row instead of aggregating the whole namespace.

Usage of a namespace = the distinct blob bytes its manifests reference + the distinct manifest
bytes it stores (shared content counts once). `namespace_content` holds one row per distinct
(namespace, kind, digest) with a reference count:
- kind "blob": how many manifest_references of kind "blob" in the namespace name the digest;
- kind "manifest": how many manifest rows of the namespace have the digest.
A count going 0 -> 1 adds the row's size to `namespace_usage`, 1 -> 0 subtracts it.

Lock order (PostgreSQL): the namespace's total row first, then its content rows, so that every
writer of one namespace queues on that single row and no two of them can deadlock.

The recounts aggregated from the manifests (O(namespace)) are for checks and the usage report
only (`UsageQueries.recount`, `by_repository`, `repair`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..base import Prebuilt
from ..schema import (
    blobs,
    manifest_references,
    manifests,
    namespace_content,
    namespace_usage,
    repositories,
)
from . import recount

if TYPE_CHECKING:
    from ..uow import UnitOfWork

CHUNK = 500


def namespace_of(repository: str) -> str:
    """The namespace of a repository: its first path component (as auth.scopes says)."""
    return repository.split("/", 1)[0]


def _insert(conn: Connection):  # type: ignore[no-untyped-def]
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def blob_kind(blob_digests: Iterable[str], child_digests: Iterable[str]) -> list[str]:
    """The digests a manifest references as kind "blob" (a child manifest's digest wins)."""
    children = set(child_digests)
    return sorted({d for d in blob_digests if d not in children})


# -- reads (the push path) ------------------------------------------------------------------------


def total(conn: Connection, namespace: str, lock: bool = False) -> int:
    """The stored usage of a namespace; with `lock`, its row stays locked to the commit."""
    query = _TOTAL_LOCKED if lock else _TOTAL
    return int(conn.execute(query, {"namespace": namespace}).scalar_one_or_none() or 0)


def bytes_added(
    conn: Connection, namespace: str, blob_digests: Sequence[str], manifest_digest: str,
    manifest_size: int,
) -> int:
    """Bytes storing a manifest would add to its namespace: O(manifest) indexed lookups."""
    held = _held(conn, namespace, blob_digests, manifest_digest)
    fresh = sorted(set(blob_digests) - {d for k, d in held if k == "blob"})
    added = sum(_blob_sizes(conn, fresh).values())
    if ("manifest", manifest_digest) not in held:
        added += manifest_size
    return added


def holds(conn: Connection, namespace: str, digest: str) -> bool:
    """True when the namespace already counts `digest` (as a blob or a manifest)."""
    return conn.execute(
        select(namespace_content.c.refs).where(
            namespace_content.c.namespace == namespace,
            namespace_content.c.kind.in_(("blob", "manifest")),
            namespace_content.c.digest == digest,
        ).limit(1)
    ).first() is not None


def _held(conn: Connection, namespace: str, blob_digests: Sequence[str], manifest_digest: str
          ) -> set[tuple[str, str]]:
    wanted = {("blob", d) for d in blob_digests}
    wanted.add(("manifest", manifest_digest))
    digests = sorted({d for _, d in wanted})
    found: set[tuple[str, str]] = set()
    # Both kinds in one statement (a push's hot path); a pair not asked for is dropped.
    for start in range(0, len(digests), CHUNK):
        params = {"in_namespace": namespace, "digests": digests[start : start + CHUNK]}
        found.update((k, d) for k, d in _HELD.rows(conn, params) if (k, d) in wanted)
    return found


def _key(namespace: str, kind: str, digests: Sequence[str]):  # type: ignore[no-untyped-def]
    # (namespace, kind) equal and digest IN: a seek per digest on the primary key (SQLite does
    # not use an index for a row-value IN list).
    return and_(
        namespace_content.c.namespace == namespace,
        namespace_content.c.kind == kind,
        namespace_content.c.digest.in_(list(digests)),
    )


def _present(conn: Connection, namespace: str, kind: str, digests: Sequence[str]) -> set[str]:
    wanted = sorted(set(digests))
    found: set[str] = set()
    for start in range(0, len(wanted), CHUNK):
        params = {"in_namespace": namespace, "of_kind": kind,
                  "digests": wanted[start : start + CHUNK]}
        found.update(conn.execute(_PRESENT, params).scalars())
    return found


def _blob_sizes(conn: Connection, digests: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for start in range(0, len(digests), CHUNK):
        chunk = {"digests": list(digests[start : start + CHUNK])}
        out.update({d: s for d, s in _BLOB_SIZES.rows(conn, chunk)})
    return out


# Push-path statements are built once: SQLAlchemy then reuses their compiled form and cache key.
_TOTAL = select(namespace_usage.c.bytes).where(namespace_usage.c.namespace == bindparam("namespace"))
_TOTAL_LOCKED = _TOTAL.with_for_update()
_CONTENT_KEY = and_(
    # Not the columns' names: an UPDATE reserves those for its SET clause.
    namespace_content.c.namespace == bindparam("in_namespace"),
    namespace_content.c.kind == bindparam("of_kind"),
    namespace_content.c.digest.in_(bindparam("digests", expanding=True)),
)
_PRESENT = select(namespace_content.c.digest).where(_CONTENT_KEY)
_HELD = Prebuilt(select(namespace_content.c.kind, namespace_content.c.digest).where(
    namespace_content.c.namespace == bindparam("in_namespace"),
    namespace_content.c.kind.in_(("blob", "manifest")),
    namespace_content.c.digest.in_(bindparam("digests", expanding=True)),
))
_ADD_REF = update(namespace_content).where(_CONTENT_KEY).values(refs=namespace_content.c.refs + 1)
_BLOB_SIZES = Prebuilt(select(blobs.c.digest, blobs.c.size).where(
    blobs.c.digest.in_(bindparam("digests", expanding=True))
))
_ADD_REF_FAST = Prebuilt(_ADD_REF)
_ADD_TO_TOTAL = (
    update(namespace_usage)
    .where(namespace_usage.c.namespace == bindparam("ns"))
    .values(bytes=namespace_usage.c.bytes + bindparam("delta"))
)


def _lock_totals_upsert(insert):  # type: ignore[no-untyped-def]
    return insert(namespace_usage).on_conflict_do_update(
        index_elements=["namespace"], set_={"bytes": namespace_usage.c.bytes}
    )


_LOCK_TOTALS = {"sqlite": _lock_totals_upsert(sqlite_insert),
                "postgresql": _lock_totals_upsert(pg_insert)}


def _add_or_create_total():  # type: ignore[no-untyped-def]
    stmt = sqlite_insert(namespace_usage)
    return stmt.on_conflict_do_update(
        index_elements=["namespace"], set_={"bytes": namespace_usage.c.bytes + stmt.excluded.bytes}
    )


_ADD_OR_CREATE_TOTAL = Prebuilt({"sqlite": _add_or_create_total()})  # SQLite only
_ADD_CONTENT = Prebuilt(namespace_content.insert())


# -- writes (inside the caller's write transaction) -----------------------------------------------


def _lock_totals(conn: Connection, namespaces: Iterable[str]) -> None:
    """Create-or-lock the total rows, in a fixed order."""
    names = sorted(set(namespaces))
    if not names:
        return
    conn.execute(_LOCK_TOTALS[conn.dialect.name], [{"namespace": n, "bytes": 0} for n in names])


def _add_to_totals(conn: Connection, deltas: dict[str, int]) -> None:
    rows = [{"ns": n, "delta": d} for n, d in sorted(deltas.items()) if d]
    if rows:
        conn.execute(_ADD_TO_TOTAL, rows)


def on_manifest_added(
    conn: Connection, repository: str, blob_digests: Sequence[str], manifest_digest: str,
    manifest_size: int,
) -> None:
    """Count a newly inserted manifest row and its kind-"blob" references in its namespace."""
    namespace = namespace_of(repository)
    # SQLite: the write lock already serialises writers, so the total is created or added to
    # by one upsert at the end instead of being locked first (two statements fewer per push).
    sqlite = conn.dialect.name == "sqlite"
    if not sqlite:
        _lock_totals(conn, [namespace])
    blob_digests = sorted(set(blob_digests))
    held = _held(conn, namespace, blob_digests, manifest_digest)
    for kind in ("blob", "manifest"):
        digests = sorted(d for k, d in held if k == kind)
        for start in range(0, len(digests), CHUNK):
            _ADD_REF_FAST.run(conn, {"in_namespace": namespace, "of_kind": kind,
                                     "digests": digests[start : start + CHUNK]})
    fresh = [d for d in blob_digests if ("blob", d) not in held]
    sizes = _blob_sizes(conn, fresh)
    rows = [
        {"namespace": namespace, "kind": "blob", "digest": d, "size": sizes.get(d, 0), "refs": 1}
        for d in fresh
    ]
    if ("manifest", manifest_digest) not in held:
        rows.append({"namespace": namespace, "kind": "manifest", "digest": manifest_digest,
                     "size": manifest_size, "refs": 1})
    if not rows:
        return
    _ADD_CONTENT.run(conn, rows)
    added = sum(int(str(r["size"])) for r in rows)
    if sqlite:
        _ADD_OR_CREATE_TOTAL.run(conn, {"namespace": namespace, "bytes": added})
    else:
        _add_to_totals(conn, {namespace: added})


def on_manifests_deleted(conn: Connection, manifest_ids: Sequence[int]) -> None:
    """Uncount manifests about to be deleted (call before deleting their rows)."""
    ids = list(manifest_ids)
    if not ids:
        return
    drops: Counter[tuple[str, str, str]] = Counter()
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        for name, digest in conn.execute(
            select(repositories.c.name, manifests.c.digest)
            .join(repositories, repositories.c.id == manifests.c.repository_id)
            .where(manifests.c.id.in_(part))
        ):
            drops[(namespace_of(name), "manifest", digest)] += 1
        for name, digest in conn.execute(
            select(repositories.c.name, manifest_references.c.digest)
            .join(manifests, manifests.c.id == manifest_references.c.manifest_id)
            .join(repositories, repositories.c.id == manifests.c.repository_id)
            .where(manifest_references.c.manifest_id.in_(part),
                   manifest_references.c.kind == "blob")
        ):
            drops[(namespace_of(name), "blob", digest)] += 1
    _uncount(conn, drops)


def _uncount(conn: Connection, drops: Counter[tuple[str, str, str]]) -> None:
    if not drops:
        return
    _lock_totals(conn, {ns for ns, _, _ in drops})
    keys = sorted(drops)
    current: dict[tuple[str, str, str], tuple[int, int]] = {}
    for (ns, kind), digests in _grouped(keys).items():
        for start in range(0, len(digests), CHUNK):
            for digest, size, refs in conn.execute(
                select(namespace_content.c.digest, namespace_content.c.size,
                       namespace_content.c.refs).where(
                    _key(ns, kind, digests[start : start + CHUNK])
                )
            ):
                current[(ns, kind, digest)] = (size, refs)
    gone = [k for k in keys if k in current and current[k][1] <= drops[k]]
    kept = [
        {"ns": k[0], "k": k[1], "d": k[2], "n": drops[k]}
        for k in keys
        if k in current and current[k][1] > drops[k]
    ]
    for (ns, kind), digests in _grouped(gone).items():
        for start in range(0, len(digests), CHUNK):
            conn.execute(
                delete(namespace_content).where(_key(ns, kind, digests[start : start + CHUNK]))
            )
    if kept:
        conn.execute(
            update(namespace_content)
            .where(
                namespace_content.c.namespace == bindparam("ns"),
                namespace_content.c.kind == bindparam("k"),
                namespace_content.c.digest == bindparam("d"),
            )
            .values(refs=namespace_content.c.refs - bindparam("n")),
            kept,
        )
    deltas: Counter[str] = Counter()
    for k in gone:
        deltas[k[0]] -= current[k][0]
    _add_to_totals(conn, dict(deltas))


def _grouped(keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for ns, kind, digest in keys:
        out.setdefault((ns, kind), []).append(digest)
    return out


def on_blob_recorded(conn: Connection, digest: str, size: int) -> None:
    """A blob row was just inserted: references recorded before it existed (a sparse push)
    counted it as 0 bytes; count its size now."""
    query = select(namespace_content.c.namespace).where(
        namespace_content.c.digest == digest,
        namespace_content.c.kind == "blob",
        namespace_content.c.size != size,
    )
    if conn.execute(query.limit(1)).first() is None:
        return
    namespaces = list(conn.execute(query).scalars())
    _lock_totals(conn, namespaces)
    stale = {
        ns: s
        for ns, s in conn.execute(
            select(namespace_content.c.namespace, namespace_content.c.size).where(
                namespace_content.c.digest == digest,
                namespace_content.c.kind == "blob",
                namespace_content.c.namespace.in_(namespaces),
            )
        )
    }
    conn.execute(
        update(namespace_content)
        .where(namespace_content.c.digest == digest, namespace_content.c.kind == "blob",
               namespace_content.c.namespace.in_(list(stale)))
        .values(size=size)
    )
    _add_to_totals(conn, {ns: size - s for ns, s in stale.items()})


def namespace_filter(namespace: str):  # type: ignore[no-untyped-def]
    """Repositories of a namespace: the namespace itself and everything under `namespace/`."""
    return or_(
        repositories.c.name == namespace,
        repositories.c.name.startswith(namespace + "/", autoescape=True),
    )


class UsageQueries:
    """Usage totals within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def total(self, namespace: str, lock: bool = False) -> int:
        """Bytes of content referenced by the namespace's manifests, shared content once (one
        stored row); with `lock`, the row stays locked to the commit."""
        return total(self.conn, namespace, lock=lock)

    def bytes_added(self, namespace: str, blob_digests: Sequence[str],
                    child_digests: Sequence[str], manifest_digest: str, manifest_size: int
                    ) -> int:
        """Bytes a manifest would add to the namespace's usage: O(manifest)."""
        return bytes_added(self.conn, namespace, blob_kind(blob_digests, child_digests),
                                 manifest_digest, manifest_size)

    def holds(self, namespace: str, digest: str) -> bool:
        """True when a manifest of the namespace already references `digest`."""
        return holds(self.conn, namespace, digest)

    def recount(self, namespace: str) -> int:
        """The namespace's usage aggregated from its manifests (O(namespace); checks only)."""
        return self._aggregate(namespace_filter(namespace))

    def by_repository(self, namespace: str) -> dict[str, int]:
        """Bytes per repository of a namespace (content shared by repositories counts in each)."""
        names = list(self.conn.execute(
            select(repositories.c.name)
            .where(namespace_filter(namespace))
            .order_by(repositories.c.name)
        ).scalars())
        return {n: self._aggregate(repositories.c.name == n) for n in names}

    def repair(self, apply: bool) -> dict[str, tuple[int, int]]:
        """Recount every namespace; {namespace: (stored, recounted)} where they differ. With
        `apply` (inside a write), the stored figures and reference counts become the recount."""
        if apply:
            return recount.rebuild(self.conn)
        stored = recount.stored_totals(self.conn)
        counted = recount.totals_of(recount.expected_content(self.conn))
        return {
            n: (stored.get(n, 0), counted.get(n, 0))
            for n in sorted(set(stored) | set(counted))
            if stored.get(n, 0) != counted.get(n, 0)
        }

    def _aggregate(self, where) -> int:  # type: ignore[no-untyped-def]
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
        blob_bytes = self.conn.execute(
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
        manifest_bytes = self.conn.execute(
            select(func.coalesce(func.sum(per_digest.c.size), 0))
        ).scalar_one()
        return int(blob_bytes) + int(manifest_bytes)
