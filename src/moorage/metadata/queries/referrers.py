"""Referrers: manifests naming a subject, indexed at push time."""

from __future__ import annotations

import builtins
import json
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..rows import ReferrerRow, before_nul
from ..schema import manifests, repositories

if TYPE_CHECKING:
    from ..uow import UnitOfWork


class ReferrerQueries:
    """Referrers within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def list(self, repository: str, subject: str, artifact_type: str | None, last: str | None,
             limit: int) -> builtins.list[ReferrerRow]:
        """Manifests in the repository whose subject is `subject`, by digest after `last`."""
        query = (
            select(
                manifests.c.digest,
                manifests.c.media_type,
                manifests.c.size,
                manifests.c.artifact_type,
                manifests.c.annotations,
            )
            .join(repositories, repositories.c.id == manifests.c.repository_id)
            .where(repositories.c.name == repository, manifests.c.subject_digest == subject)
            .order_by(manifests.c.digest)
            .limit(limit)
        )
        if artifact_type is not None:
            if "\x00" in artifact_type:
                return []  # matches nothing stored (and PostgreSQL refuses NUL in text)
            query = query.where(manifests.c.artifact_type == artifact_type)
        if last is not None:
            query = query.where(manifests.c.digest > before_nul(last))
        return [
            ReferrerRow(d, mt, s, at, json.loads(ann) if ann else None)
            for d, mt, s, at, ann in self.conn.execute(query).all()
        ]
