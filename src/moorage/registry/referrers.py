"""The referrers API: manifests that name a subject, indexed at push time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..oci.digest import Digest

if TYPE_CHECKING:
    from ..metadata.uow import Database

# A response stays well under the 4 MiB a client may expect of a manifest-sized document.
RESPONSE_BUDGET = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReferrersPage:
    """One page of the referrers index and the cursor to the next page, if any."""

    descriptors: list[dict[str, Any]]
    next_last: str | None


class ReferrerService:
    """List referrers of a digest in a repository."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def pull(
        self, repository: str, subject: Digest, artifact_type: str | None, last: str | None,
        limit: int,
    ) -> ReferrersPage:
        """`list` from the request path (in a thread)."""
        return await asyncio.to_thread(self.list, repository, subject, artifact_type, last, limit)

    def list(
        self, repository: str, subject: Digest, artifact_type: str | None, last: str | None,
        limit: int,
    ) -> ReferrersPage:
        """Descriptors for each referrer, at most `limit`, cut short to bound the response size."""
        with self.database.read() as uow:
            rows = uow.referrers.list(repository, str(subject), artifact_type, last, limit + 1)
        descriptors: list[dict[str, Any]] = []
        budget = RESPONSE_BUDGET
        for row in rows[:limit]:
            descriptor: dict[str, Any] = {
                "mediaType": row.media_type,
                "digest": row.digest,
                "size": row.size,
            }
            if row.artifact_type:
                descriptor["artifactType"] = row.artifact_type
            if row.annotations:
                descriptor["annotations"] = row.annotations
            cost = 200 + sum(len(k) + len(str(v)) for k, v in (row.annotations or {}).items())
            if descriptors and cost > budget:
                return ReferrersPage(descriptors, descriptors[-1]["digest"])
            budget -= cost
            descriptors.append(descriptor)
        more = len(rows) > limit
        return ReferrersPage(descriptors, descriptors[-1]["digest"] if more and descriptors else None)
