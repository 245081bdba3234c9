"""Image size insights: one row per image manifest (its JSON report), and the metadata the
report's "shared with other images" figures come from."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from ..base import column_text
from ..schema import image_insights as ii
from ..schema import manifest_references as refs
from ..schema import manifests, repositories

if TYPE_CHECKING:
    from ..uow import UnitOfWork


class InsightsQueries:
    """The `image_insights` table within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def manifest_id(self, repository: str, digest: str) -> int | None:
        """The row id of the manifest `repository@digest` (None: not stored)."""
        found = self.conn.execute(
            select(manifests.c.id).select_from(manifests.join(
                repositories, repositories.c.id == manifests.c.repository_id))
            .where(repositories.c.name == repository, manifests.c.digest == digest)).first()
        return int(found[0]) if found else None

    def shared_with(self, manifest_id: int, digests: Sequence[str]) -> dict[str, int]:
        """{blob digest: how many other manifests (any repository) reference it}."""
        if not digests:
            return {}
        rows = self.conn.execute(
            select(refs.c.digest, func.count(func.distinct(refs.c.manifest_id)))
            .where(refs.c.digest.in_(sorted(set(digests))), refs.c.kind == "blob",
                   refs.c.manifest_id != manifest_id)
            .group_by(refs.c.digest))
        return {str(d): int(n) for d, n in rows}

    def save(self, manifest_id: int, repository: str, digest: str, status: str,
             report: dict[str, Any], error: str | None, now: float) -> None:
        """Replace the manifest's report."""
        self.conn.execute(delete(ii).where(ii.c.manifest_id == manifest_id))
        self.conn.execute(ii.insert().values(
            manifest_id=manifest_id, repository=repository, digest=digest, status=status,
            error=column_text(error, 2000), report=json.dumps(report, separators=(",", ":")),
            created_at=now))

    def get(self, repository: str, digest: str) -> dict[str, Any] | None:
        """The manifest's stored report: manifest_id, status, error, created_at, report
        (decoded)."""
        row = self.conn.execute(
            select(ii.c.manifest_id, ii.c.status, ii.c.error, ii.c.created_at, ii.c.report)
            .where(ii.c.repository == repository, ii.c.digest == digest)).first()
        if row is None:
            return None
        return {"manifest_id": row.manifest_id, "status": row.status, "error": row.error,
                "created_at": row.created_at, "report": json.loads(row.report)}
