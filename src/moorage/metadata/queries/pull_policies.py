"""Pull policies per namespace, and what a pull check reads of a manifest (its kind)."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..schema import manifests, pull_policies, repositories, tags

if TYPE_CHECKING:
    from ..uow import UnitOfWork

COSIGN_TAG = re.compile(r"^sha256-[0-9a-f]{64}\.(sig|att)$")


class PullPolicyQueries:
    """Pull policy rows within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def get(self, namespace: str) -> tuple[dict[str, Any], int] | None:
        """(policy, version) of a namespace; None when it has none."""
        row = self.conn.execute(
            select(pull_policies.c.policy, pull_policies.c.version)
            .where(pull_policies.c.namespace == namespace)).first()
        return (json.loads(row.policy), int(row.version)) if row else None

    def set(self, namespace: str, policy: dict[str, Any], actor: str | None) -> int:
        """Replace the namespace's policy; its new version."""
        found = self.conn.execute(
            select(pull_policies.c.version).where(pull_policies.c.namespace == namespace)
        ).first()
        version = (int(found.version) if found else 0) + 1
        stmt = self.uow.store._insert(pull_policies).values(
            namespace=namespace, policy=json.dumps(policy, sort_keys=True), version=version,
            updated_at=time.time(), updated_by=actor)
        self.conn.execute(stmt.on_conflict_do_update(
            index_elements=["namespace"],
            set_={"policy": stmt.excluded.policy, "version": stmt.excluded.version,
                  "updated_at": stmt.excluded.updated_at,
                  "updated_by": stmt.excluded.updated_by}))
        return version

    def manifest_kind(self, repository: str, digest: str) -> tuple[str | None, str | None]:
        """(artifact_type, subject_digest) of a stored manifest."""
        row = self.conn.execute(
            select(manifests.c.artifact_type, manifests.c.subject_digest)
            .select_from(manifests.join(repositories,
                                        repositories.c.id == manifests.c.repository_id))
            .where(repositories.c.name == repository, manifests.c.digest == digest)).first()
        return (row.artifact_type, row.subject_digest) if row else (None, None)

    def content(self, repository: str, digest: str) -> bytes | None:
        """The stored bytes of a manifest (an index's children are read from them)."""
        row = self.conn.execute(
            select(manifests.c.content)
            .select_from(manifests.join(repositories,
                                        repositories.c.id == manifests.c.repository_id))
            .where(repositories.c.name == repository, manifests.c.digest == digest)).first()
        return bytes(row.content) if row else None

    def cosign_tagged(self, repository: str, digest: str) -> bool:
        """Whether a cosign signature or attestation tag (`sha256-….sig|.att`) names it."""
        names = self.conn.execute(
            select(tags.c.name)
            .select_from(tags.join(repositories, repositories.c.id == tags.c.repository_id))
            .where(repositories.c.name == repository, tags.c.manifest_digest == digest)
            .limit(16)).scalars()
        return any(COSIGN_TAG.match(n) for n in names)
