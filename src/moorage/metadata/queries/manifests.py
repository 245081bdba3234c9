"""Manifest rows and their references: store, resolve, delete, presence."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import and_, bindparam, delete, select

from ..base import Prebuilt, per_dialect
from ..rows import ManifestRow, NewManifest
from ..schema import manifest_references, manifests, repositories, tags
from . import derived, usage

if TYPE_CHECKING:
    from ..uow import UnitOfWork


class ManifestQueries:
    """Manifests within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def put(self, repo_id: int, repository: str, manifest: NewManifest) -> bool:
        """Store a manifest with its references (idempotent by digest); True when new."""
        inserted = _PUT.scalar(self.conn, {
            "repository_id": repo_id,
            "digest": manifest.digest,
            "media_type": manifest.media_type,
            "size": len(manifest.content),
            "content": manifest.content,
            "artifact_type": manifest.artifact_type,
            "subject_digest": manifest.subject_digest,
            "annotations": json.dumps(manifest.annotations) if manifest.annotations else None,
            "created_at": time.time(),
        })
        if inserted is None:
            return False
        refs = {d: "blob" for d in manifest.blob_digests}
        refs.update({d: "manifest" for d in manifest.child_digests})
        if manifest.subject_digest:
            refs.setdefault(manifest.subject_digest, "subject")
        if refs:
            _ADD_REFERENCES.run(
                self.conn,
                [{"manifest_id": inserted, "digest": d, "kind": k} for d, k in refs.items()],
            )
        usage.on_manifest_added(self.conn, repository,
                                [d for d, k in refs.items() if k == "blob"],
                                manifest.digest, len(manifest.content))
        return True

    def get(self, repository: str, digest: str | None, tag: str | None, with_content: bool
            ) -> ManifestRow | None:
        """Resolve a manifest by digest or tag in one indexed query."""
        query = _MANIFEST_QUERIES[(tag is not None, with_content)]
        params = {"repository": repository, "key": tag if tag is not None else digest}
        found = query.rows(self.conn, params)
        if not found:
            return None
        row = found[0]
        return ManifestRow(row[0], row[1], row[2], row[3] if with_content else None)

    def present(self, repo_id: int, digests: Sequence[str]) -> set[str]:
        """Those of `digests` stored as manifests in the repository."""
        if not digests:
            return set()
        params = {"repo_id": repo_id, "digests": sorted(set(digests))}
        return {r[0] for r in _PRESENT.rows(self.conn, params)}

    def delete(self, repository: str, digest: str) -> bool:
        """Delete a manifest and every tag pointing at it."""
        conn = self.conn
        repo_id = self.uow.repositories.id_of(repository)
        if repo_id is None:
            return False
        conn.execute(
            delete(tags).where(tags.c.repository_id == repo_id, tags.c.manifest_digest == digest)
        )
        ids = list(conn.execute(select(manifests.c.id).where(
            manifests.c.repository_id == repo_id, manifests.c.digest == digest)).scalars())
        usage.on_manifests_deleted(conn, ids)
        derived.on_manifests_deleted(conn, ids)
        result = conn.execute(
            delete(manifests).where(
                manifests.c.repository_id == repo_id, manifests.c.digest == digest
            )
        )
        return result.rowcount > 0


def _manifest_query(by_tag: bool, with_content: bool):  # type: ignore[no-untyped-def]
    cols = [manifests.c.digest, manifests.c.media_type, manifests.c.size]
    if with_content:
        cols.append(manifests.c.content)
    if by_tag:
        source = tags.join(
            manifests,
            and_(
                manifests.c.repository_id == tags.c.repository_id,
                manifests.c.digest == tags.c.manifest_digest,
            ),
        ).join(repositories, repositories.c.id == tags.c.repository_id)
        key = tags.c.name
    else:
        source = manifests.join(repositories, repositories.c.id == manifests.c.repository_id)
        key = manifests.c.digest
    return (
        select(*cols)
        .select_from(source)
        .where(repositories.c.name == bindparam("repository"), key == bindparam("key"))
    )


# Hot-path statements are built once: SQLAlchemy then reuses their compiled form and cache key.
_MANIFEST_QUERIES = {
    (by_tag, with_content): Prebuilt(_manifest_query(by_tag, with_content))
    for by_tag in (True, False)
    for with_content in (True, False)
}
_PUT = Prebuilt(per_dialect(
    lambda insert: insert(manifests)
    .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
    .returning(manifests.c.id)
))
_ADD_REFERENCES = Prebuilt(manifest_references.insert())
_PRESENT = Prebuilt(select(manifests.c.digest).where(
    manifests.c.repository_id == bindparam("repo_id"),
    manifests.c.digest.in_(bindparam("digests", expanding=True)),
))
