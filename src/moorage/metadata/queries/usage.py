"""Namespace usage: the stored totals of metadata/usage.py, plus the O(namespace) recounts
that only checks and the usage report run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select

from .. import usage
from ..schema import blobs, manifest_references, manifests, repositories

if TYPE_CHECKING:
    from ..uow import UnitOfWork


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
        return usage.total(self.conn, namespace, lock=lock)

    def bytes_added(self, namespace: str, blob_digests: Sequence[str],
                    child_digests: Sequence[str], manifest_digest: str, manifest_size: int
                    ) -> int:
        """Bytes a manifest would add to the namespace's usage: O(manifest)."""
        return usage.bytes_added(self.conn, namespace, usage.blob_kind(blob_digests, child_digests),
                                 manifest_digest, manifest_size)

    def holds(self, namespace: str, digest: str) -> bool:
        """True when a manifest of the namespace already references `digest`."""
        return usage.holds(self.conn, namespace, digest)

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
            return usage.rebuild(self.conn)
        stored = usage.stored_totals(self.conn)
        counted = usage.totals_of(usage.expected_content(self.conn))
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
