"""Trust entries per namespace, and the one query that finds a manifest's signature candidates."""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, literal, select, union_all

from ..base import per_dialect
from ..schema import manifests, repositories, tags, trust_entries

if TYPE_CHECKING:
    from ..uow import UnitOfWork

# Candidates one verification reads at most: a manifest with more is refused, not scanned.
MAX_CANDIDATES = 64


@dataclass(frozen=True, slots=True)
class TrustRow:
    id: int
    namespace: str
    name: str
    kind: str  # key | x509
    algorithm: str
    fingerprint: str
    material: str
    created_at: float
    created_by: str | None
    identity: str | None = None
    issuer: str | None = None


@dataclass(frozen=True, slots=True)
class CandidateRow:
    """A manifest that may carry a signature of another: found by tag or as a referrer."""

    digest: str
    content: bytes
    via: str  # tag | referrer
    label: str | None  # the tag name, or the referrer's artifact type


class TrustQueries:
    """Trust entries and signature candidates within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def add(self, namespace: str, name: str, kind: str, algorithm: str, fingerprint: str,
            material: str, created_by: str | None, identity: str | None = None,
            issuer: str | None = None) -> bool:
        """Store an entry; False when the namespace already has one of that name."""
        # RETURNING, not rowcount: psycopg reports -1 for a prebuilt ON CONFLICT insert.
        return self.conn.execute(_ADD[self.uow.dialect], {
            "namespace": namespace, "name": name, "kind": kind, "algorithm": algorithm,
            "fingerprint": fingerprint, "material": material, "created_at": time.time(),
            "created_by": created_by, "identity": identity, "issuer": issuer,
        }).scalar_one_or_none() is not None

    def remove(self, namespace: str, name: str) -> bool:
        """Delete an entry; False when there was none."""
        result = self.conn.execute(delete(trust_entries).where(
            trust_entries.c.namespace == namespace, trust_entries.c.name == name))
        return result.rowcount > 0

    def list(self, namespace: str | None = None) -> builtins.list[TrustRow]:
        """Entries of one namespace (or all), by namespace and name."""
        query = select(*_COLUMNS).order_by(trust_entries.c.namespace, trust_entries.c.name)
        if namespace is not None:
            query = query.where(trust_entries.c.namespace == namespace)
        return [TrustRow(*row) for row in self.conn.execute(query).all()]

    def candidates(self, repository: str, digest: str, tag_names: builtins.list[str],
                   artifact_types: builtins.list[str]) -> builtins.list[CandidateRow]:
        """Manifests of the repository tagged with one of `tag_names` or naming `digest` as
        their subject with one of `artifact_types`: one statement on two indexes (the tags'
        primary key and ix_manifests_subject)."""
        params = {"repository": repository, "digest": digest, "tag_names": tag_names,
                  "artifact_types": artifact_types}
        return [CandidateRow(d, bytes(c), via, label)
                for d, c, via, label in self.conn.execute(_CANDIDATES, params).all()]


_COLUMNS = (trust_entries.c.id, trust_entries.c.namespace, trust_entries.c.name,
            trust_entries.c.kind, trust_entries.c.algorithm, trust_entries.c.fingerprint,
            trust_entries.c.material, trust_entries.c.created_at, trust_entries.c.created_by,
            trust_entries.c.identity, trust_entries.c.issuer)
_ADD = per_dialect(
    lambda insert: insert(trust_entries).on_conflict_do_nothing(
        index_elements=["namespace", "name"]).returning(trust_entries.c.id)
)
_REPO = (select(repositories.c.id).where(repositories.c.name == bindparam("repository"))
         .scalar_subquery())
_BY_TAG = (
    select(manifests.c.digest, manifests.c.content, literal("tag").label("via"),
           tags.c.name.label("label"))
    .join(manifests, (manifests.c.repository_id == tags.c.repository_id)
          & (manifests.c.digest == tags.c.manifest_digest))
    .where(tags.c.repository_id == _REPO,
           tags.c.name.in_(bindparam("tag_names", expanding=True)))
)
_BY_SUBJECT = (
    select(manifests.c.digest, manifests.c.content, literal("referrer").label("via"),
           manifests.c.artifact_type.label("label"))
    .where(manifests.c.repository_id == _REPO,
           manifests.c.subject_digest == bindparam("digest"),
           manifests.c.artifact_type.in_(bindparam("artifact_types", expanding=True)))
)
_CANDIDATES = union_all(_BY_TAG, _BY_SUBJECT).limit(MAX_CANDIDATES)
