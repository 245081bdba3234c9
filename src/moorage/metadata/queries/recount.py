"""Recounting usage from the manifests themselves: what the stored content rows and totals
should be, and replacing them (`moorage quota recount`, the `quota.recount` job, and checks)."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import Connection, case, delete, func, select

from ..schema import (
    blobs,
    manifest_references,
    manifests,
    namespace_content,
    namespace_usage,
    repositories,
)


def namespace_sql(conn: Connection, name):  # type: ignore[no-untyped-def]
    """SQL for the first path component of a repository name column."""
    if conn.dialect.name == "postgresql":
        return func.split_part(name, "/", 1)
    slash = func.instr(name, "/")
    return case((slash > 0, func.substr(name, 1, slash - 1)), else_=name)



def expected_content(conn: Connection) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(namespace, kind, digest) -> (size, refs), recounted from manifests and references."""
    ns = namespace_sql(conn, repositories.c.name).label("ns")
    out: dict[tuple[str, str, str], tuple[int, int]] = {}
    blob_rows = (
        select(ns, manifest_references.c.digest, func.max(func.coalesce(blobs.c.size, 0)),
               func.count())
        .select_from(
            manifest_references.join(manifests, manifests.c.id == manifest_references.c.manifest_id)
            .join(repositories, repositories.c.id == manifests.c.repository_id)
            .outerjoin(blobs, blobs.c.digest == manifest_references.c.digest)
        )
        .where(manifest_references.c.kind == "blob")
        .group_by(ns, manifest_references.c.digest)
    )
    for namespace, digest, size, refs in conn.execute(blob_rows):
        out[(namespace, "blob", digest)] = (int(size), int(refs))
    manifest_rows = (
        select(ns, manifests.c.digest, func.max(manifests.c.size), func.count())
        .select_from(manifests.join(repositories, repositories.c.id == manifests.c.repository_id))
        .group_by(ns, manifests.c.digest)
    )
    for namespace, digest, size, refs in conn.execute(manifest_rows):
        out[(namespace, "manifest", digest)] = (int(size), int(refs))
    return out


def stored_content(conn: Connection) -> dict[tuple[str, str, str], tuple[int, int]]:
    """The content rows as stored (for checks and tests)."""
    return {
        (n, k, d): (int(s), int(r))
        for n, k, d, s, r in conn.execute(
            select(namespace_content.c.namespace, namespace_content.c.kind,
                   namespace_content.c.digest, namespace_content.c.size, namespace_content.c.refs)
        )
    }


def stored_totals(conn: Connection) -> dict[str, int]:
    """Every namespace's stored total, zero totals left out."""
    return {
        n: int(b)
        for n, b in conn.execute(select(namespace_usage.c.namespace, namespace_usage.c.bytes))
        if b
    }


def totals_of(content: dict[tuple[str, str, str], tuple[int, int]]) -> dict[str, int]:
    """Per-namespace totals of a content map, zero totals left out."""
    out: Counter[str] = Counter()
    for (ns, _, _), (size, _) in content.items():
        out[ns] += size
    return {n: b for n, b in out.items() if b}


def rebuild(conn: Connection) -> dict[str, tuple[int, int]]:
    """Recount everything and replace the stored rows; returns {namespace: (stored, recounted)}
    for the namespaces whose total was wrong. Writers of usage wait meanwhile."""
    if conn.dialect.name == "postgresql":
        # Pushes and deletes take the total rows first: holding the table keeps them out.
        conn.exec_driver_sql("LOCK TABLE namespace_usage IN SHARE ROW EXCLUSIVE MODE")
    before = stored_totals(conn)
    content = expected_content(conn)
    after = totals_of(content)
    conn.execute(delete(namespace_content))
    conn.execute(delete(namespace_usage))
    rows = [
        {"namespace": n, "kind": k, "digest": d, "size": s, "refs": r}
        for (n, k, d), (s, r) in content.items()
    ]
    for start in range(0, len(rows), 5000):
        conn.execute(namespace_content.insert(), rows[start : start + 5000])
    if after:
        conn.execute(namespace_usage.insert(), [{"namespace": n, "bytes": b}
                                                for n, b in sorted(after.items())])
    return {
        n: (before.get(n, 0), after.get(n, 0))
        for n in sorted(set(before) | set(after))
        if before.get(n, 0) != after.get(n, 0)
    }
