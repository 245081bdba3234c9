"""Metadata queries. Blocking (SQLAlchemy Core); the service layer decides which thread runs them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, delete, func, select, update

from . import usage
from .base import StoreBase
from .outbox_store import Emit, emit
from .schema import (
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
    uploads,
)


@dataclass(frozen=True, slots=True)
class UploadRow:
    id: str
    repository: str
    algorithm: str
    offset: int
    hash_state: bytes
    hash_state_version: str
    storage_handle: str
    writer_token: str | None
    writer_until: float | None


@dataclass(frozen=True, slots=True)
class BlobRow:
    digest: str
    size: int
    storage_key: str


@dataclass(frozen=True, slots=True)
class ManifestRow:
    digest: str
    media_type: str
    size: int
    content: bytes | None


@dataclass(frozen=True, slots=True)
class ReferrerRow:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict | None


@dataclass(frozen=True, slots=True)
class NewManifest:
    """A validated manifest ready to be stored."""

    digest: str
    media_type: str
    content: bytes
    artifact_type: str | None
    subject_digest: str | None
    annotations: dict | None
    blob_digests: tuple[str, ...]
    child_digests: tuple[str, ...]


class MetadataStore(StoreBase):
    """All SQL the registry runs, behind named operations."""

    def _bytewise(self, column):  # type: ignore[no-untyped-def]
        # Listings are in byte order (SQLite's default); PostgreSQL sorts by the database's
        # locale unless told otherwise.
        return column.collate("C") if self.engine.dialect.name == "postgresql" else column

    # -- repositories -------------------------------------------------------------------------

    def _repository_id(self, conn: Connection, name: str) -> int | None:
        return conn.execute(
            select(repositories.c.id).where(repositories.c.name == name)
        ).scalar_one_or_none()

    def _ensure_repository(self, conn: Connection, name: str) -> int:
        existing = self._repository_id(conn, name)
        if existing is not None:
            return existing
        conn.execute(
            self._insert(repositories)
            .values(name=name, created_at=time.time())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return conn.execute(
            select(repositories.c.id).where(repositories.c.name == name)
        ).scalar_one()

    def list_repositories(self, last: str | None, limit: int) -> list[str]:
        """Repository names in byte order after `last`, at most `limit`."""
        name = self._bytewise(repositories.c.name)
        query = select(repositories.c.name).order_by(name).limit(limit)
        if last is not None:
            query = query.where(name > _before_nul(last))
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    # -- uploads ------------------------------------------------------------------------------

    def create_upload(
        self,
        upload_id: str,
        repository: str,
        algorithm: str,
        hash_state: bytes,
        hash_state_version: str,
        storage_handle: str,
    ) -> None:
        """Record a new upload session."""
        now = time.time()
        with self._write() as conn:
            repo_id = self._ensure_repository(conn, repository)
            conn.execute(
                uploads.insert().values(
                    id=upload_id,
                    repository_id=repo_id,
                    algorithm=algorithm,
                    offset=0,
                    hash_state=hash_state,
                    hash_state_version=hash_state_version,
                    storage_handle=storage_handle,
                    created_at=now,
                    updated_at=now,
                )
            )

    def _upload_query(self):  # type: ignore[no-untyped-def]
        return select(
            uploads.c.id,
            repositories.c.name,
            uploads.c.algorithm,
            uploads.c.offset,
            uploads.c.hash_state,
            uploads.c.hash_state_version,
            uploads.c.storage_handle,
            uploads.c.writer_token,
            uploads.c.writer_until,
        ).join(repositories, repositories.c.id == uploads.c.repository_id)

    def get_upload(self, repository: str, upload_id: str) -> UploadRow | None:
        """The upload session, if it exists in this repository."""
        query = self._upload_query().where(
            uploads.c.id == upload_id, repositories.c.name == repository
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return UploadRow(*row) if row else None

    def claim_upload(
        self, repository: str, upload_id: str, token: str, lease_seconds: float
    ) -> UploadRow | None:
        """Take the writer lease of an upload; None when it is unknown or busy."""
        now = time.time()
        with self._write() as conn:
            row = conn.execute(
                self._upload_query()
                .where(uploads.c.id == upload_id, repositories.c.name == repository)
                # PostgreSQL: two nodes claiming at once serialise on the row (SQLite's
                # BEGIN IMMEDIATE already does; the clause renders to nothing there).
                .with_for_update(of=uploads)
            ).first()
            if row is None:
                return None
            current = UploadRow(*row)
            if current.writer_token and (current.writer_until or 0) > now:
                raise UploadBusy()
            conn.execute(
                update(uploads)
                .where(uploads.c.id == upload_id)
                .values(writer_token=token, writer_until=now + lease_seconds)
            )
        return current

    def renew_upload_lease(self, upload_id: str, token: str, lease_seconds: float) -> bool:
        """Extend a held lease while a long chunk streams."""
        with self._write() as conn:
            result = conn.execute(
                update(uploads)
                .where(uploads.c.id == upload_id, uploads.c.writer_token == token)
                .values(writer_until=time.time() + lease_seconds)
            )
        return result.rowcount == 1

    def save_upload_progress(
        self,
        upload_id: str,
        token: str,
        offset: int,
        hash_state: bytes,
        storage_handle: str | None = None,
        keep_lease_seconds: float | None = None,
    ) -> bool:
        """Persist the acknowledged offset, hash state (and new storage handle); free the lease,
        or, with `keep_lease_seconds` (a checkpoint in the middle of a chunk), extend it."""
        now = time.time()
        values: dict[str, object] = {
            "offset": offset,
            "hash_state": hash_state,
            "writer_token": None,
            "writer_until": None,
            "updated_at": now,
        }
        if keep_lease_seconds is not None:
            del values["writer_token"]
            values["writer_until"] = now + keep_lease_seconds
        if storage_handle is not None:
            values["storage_handle"] = storage_handle
        with self._write() as conn:
            result = conn.execute(
                update(uploads)
                .where(uploads.c.id == upload_id, uploads.c.writer_token == token)
                .values(**values)
            )
        return result.rowcount == 1

    def release_upload(self, upload_id: str, token: str) -> None:
        """Give the lease back without changing progress."""
        with self._write() as conn:
            conn.execute(
                update(uploads)
                .where(uploads.c.id == upload_id, uploads.c.writer_token == token)
                .values(writer_token=None, writer_until=None)
            )

    def release_all_upload_leases(self) -> None:
        """Free every writer lease (only for the embedded database at start: no writer lives)."""
        with self._write() as conn:
            conn.execute(update(uploads).values(writer_token=None, writer_until=None))

    def delete_upload(self, upload_id: str) -> None:
        """Forget an upload session."""
        with self._write() as conn:
            conn.execute(delete(uploads).where(uploads.c.id == upload_id))

    # -- blobs --------------------------------------------------------------------------------

    def commit_blob(
        self, repository: str, upload_id: str | None, digest: str, size: int, storage_key: str,
        events: Emit = None,
    ) -> str:
        """Record committed content, link it to the repository, and end the upload, atomically.

        Returns the storage key the digest is recorded under: `storage_key`, or the key of
        identical content someone else committed first (the caller then drops its copy).
        """
        now = time.time()
        with self._write() as conn:
            repo_id = self._ensure_repository(conn, repository)
            conn.execute(
                self._insert(blobs)
                .values(digest=digest, size=size, storage_key=storage_key, created_at=now)
                .on_conflict_do_nothing(index_elements=["digest"])
            )
            usage.on_blob_recorded(conn, digest, size)
            self._link(conn, repo_id, [digest], now)
            if upload_id is not None:
                conn.execute(delete(uploads).where(uploads.c.id == upload_id))
            emit(conn, events)
            return conn.execute(
                select(blobs.c.storage_key).where(blobs.c.digest == digest)
            ).scalar_one()

    def _link(self, conn: Connection, repo_id: int, digests: Iterable[str], now: float) -> None:
        rows = [{"repository_id": repo_id, "digest": d, "created_at": now} for d in digests]
        if rows:
            # A re-upload or re-mount refreshes the link: a fresh link is what protects a blob
            # from garbage collection until a manifest references it (see gc/collector.py).
            stmt = self._insert(repository_blobs)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["repository_id", "digest"],
                    set_={"created_at": stmt.excluded.created_at},
                ),
                rows,
            )

    def _refresh_links(
        self, conn: Connection, repo_id: int, digests: Iterable[str], now: float
    ) -> None:
        """Make the links a manifest relies on fresh, under row locks held until commit.

        A collector's link delete re-checks the age under the same lock, so it either ran first
        (the guard then finds the link gone and refuses the push) or finds it fresh and keeps it.
        Only existing links are touched: a push never grants access to content.
        """
        wanted = sorted(set(digests))
        if not wanted:
            return
        where = (repository_blobs.c.repository_id == repo_id, repository_blobs.c.digest.in_(wanted))
        if self.engine.dialect.name == "postgresql":
            # In digest order: pushes sharing layers lock them in the same order, never deadlock.
            conn.execute(
                select(repository_blobs.c.digest)
                .where(*where)
                .order_by(repository_blobs.c.digest)
                .with_for_update()
            )
        conn.execute(update(repository_blobs).where(*where).values(created_at=now))

    def find_blob(self, digest: str) -> BlobRow | None:
        """The content record of a digest, whichever repositories hold it."""
        with self._read() as conn:
            row = conn.execute(
                select(blobs.c.digest, blobs.c.size, blobs.c.storage_key).where(
                    blobs.c.digest == digest
                )
            ).first()
        return BlobRow(*row) if row else None

    def repository_blob(self, repository: str, digest: str) -> BlobRow | None:
        """The blob if this repository holds a link to it."""
        with self._read() as conn:
            row = conn.execute(_REPOSITORY_BLOB, {"repository": repository, "digest": digest}).first()
        return BlobRow(*row) if row else None

    def repositories_with_blob(self, digest: str, limit: int = 50) -> list[str]:
        """Names of repositories linking a blob (bounded)."""
        query = (
            select(repositories.c.name)
            .join(repository_blobs, repository_blobs.c.repository_id == repositories.c.id)
            .where(repository_blobs.c.digest == digest)
            .order_by(repositories.c.name)
            .limit(limit)
        )
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    def link_blob(self, repository: str, digest: str, events: Emit = None) -> bool:
        """Make existing content readable through `repository` (cross-repository mount).

        False when the content is gone (garbage-collected since the caller looked it up).
        """
        with self._write() as conn:
            # FOR SHARE (PostgreSQL): a concurrent collector cannot delete the row under the link.
            found = conn.execute(
                select(blobs.c.digest).where(blobs.c.digest == digest).with_for_update(read=True)
            ).first()
            if found is None:
                return False
            repo_id = self._ensure_repository(conn, repository)
            self._link(conn, repo_id, [digest], time.time())
            emit(conn, events)
        return True

    def unlink_blob(self, repository: str, digest: str, events: Emit = None) -> bool:
        """Remove a repository's link to a blob; the bytes stay for other repositories and GC."""
        with self._write() as conn:
            repo_id = self._repository_id(conn, repository)
            if repo_id is None:
                return False
            result = conn.execute(
                delete(repository_blobs).where(
                    repository_blobs.c.repository_id == repo_id,
                    repository_blobs.c.digest == digest,
                )
            )
            if result.rowcount > 0:
                emit(conn, events)
        return result.rowcount > 0

    def linked_blob_sizes(self, repository: str, digests: Iterable[str]) -> dict[str, int]:
        """Sizes of those of `digests` this repository holds."""
        wanted = list(set(digests))
        if not wanted:
            return {}
        query = (
            select(blobs.c.digest, blobs.c.size)
            .select_from(
                repository_blobs.join(blobs, blobs.c.digest == repository_blobs.c.digest).join(
                    repositories, repositories.c.id == repository_blobs.c.repository_id
                )
            )
            .where(repositories.c.name == repository, repository_blobs.c.digest.in_(wanted))
        )
        with self._read() as conn:
            return {d: s for d, s in conn.execute(query)}

    # -- manifests ----------------------------------------------------------------------------

    def present_manifests(self, repository: str, digests: Iterable[str]) -> set[str]:
        """Those of `digests` stored as manifests in this repository."""
        wanted = list(set(digests))
        if not wanted:
            return set()
        query = (
            select(manifests.c.digest)
            .join(repositories, repositories.c.id == manifests.c.repository_id)
            .where(repositories.c.name == repository, manifests.c.digest.in_(wanted))
        )
        with self._read() as conn:
            return set(conn.execute(query).scalars())

    def put_manifest(
        self,
        repository: str,
        manifest: NewManifest,
        tag_names: list[str],
        guard: Callable[[Connection, int], None] | None = None,
        events: Emit = None,
    ) -> None:
        """Store a manifest (idempotent by digest) and point `tag_names` at it, atomically.

        `guard(conn, repository_id)` runs first inside the same write transaction (lifecycle
        checks: references still present, immutable tags, quota); raising aborts the push.
        """
        now = time.time()
        with self._write() as conn:
            repo_id = self._ensure_repository(conn, repository)
            self._lock_repository(conn, repo_id, exclusive=False)
            self._refresh_links(conn, repo_id, manifest.blob_digests, now)
            if guard is not None:
                guard(conn, repo_id)
            inserted = conn.execute(
                self._insert(manifests)
                .values(
                    repository_id=repo_id,
                    digest=manifest.digest,
                    media_type=manifest.media_type,
                    size=len(manifest.content),
                    content=manifest.content,
                    artifact_type=manifest.artifact_type,
                    subject_digest=manifest.subject_digest,
                    annotations=json.dumps(manifest.annotations) if manifest.annotations else None,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
                .returning(manifests.c.id)
            ).scalar_one_or_none()
            if inserted is not None:
                refs = {d: "blob" for d in manifest.blob_digests}
                refs.update({d: "manifest" for d in manifest.child_digests})
                if manifest.subject_digest:
                    refs.setdefault(manifest.subject_digest, "subject")
                if refs:
                    conn.execute(
                        manifest_references.insert(),
                        [{"manifest_id": inserted, "digest": d, "kind": k} for d, k in refs.items()],
                    )
                usage.on_manifest_added(conn, repository, [d for d, k in refs.items() if k == "blob"],
                                        manifest.digest, len(manifest.content))
            for name in tag_names:
                conn.execute(
                    self._insert(tags)
                    .values(
                        repository_id=repo_id,
                        name=name,
                        manifest_digest=manifest.digest,
                        updated_at=now,
                    )
                    .on_conflict_do_update(
                        index_elements=["repository_id", "name"],
                        set_={"manifest_digest": manifest.digest, "updated_at": now},
                    )
                )
            emit(conn, events)

    def get_manifest(
        self, repository: str, digest: str | None, tag: str | None, with_content: bool
    ) -> ManifestRow | None:
        """Resolve a manifest by digest or tag in one indexed query."""
        query = _MANIFEST_QUERIES[(tag is not None, with_content)]
        params = {"repository": repository, "key": tag if tag is not None else digest}
        with self._read() as conn:
            row = conn.execute(query, params).first()
        if row is None:
            return None
        return ManifestRow(row[0], row[1], row[2], row[3] if with_content else None)

    def delete_manifest(self, repository: str, digest: str, events: Emit = None) -> bool:
        """Delete a manifest and every tag pointing at it."""
        with self._write() as conn:
            repo_id = self._repository_id(conn, repository)
            if repo_id is None:
                return False
            conn.execute(
                delete(tags).where(tags.c.repository_id == repo_id, tags.c.manifest_digest == digest)
            )
            usage.on_manifests_deleted(conn, list(conn.execute(select(manifests.c.id).where(
                manifests.c.repository_id == repo_id, manifests.c.digest == digest)).scalars()))
            result = conn.execute(
                delete(manifests).where(
                    manifests.c.repository_id == repo_id, manifests.c.digest == digest
                )
            )
            if result.rowcount > 0:
                emit(conn, events)
        return result.rowcount > 0

    def delete_tag(self, repository: str, tag: str, events: Emit = None) -> bool:
        """Remove one tag; the manifest stays."""
        with self._write() as conn:
            repo_id = self._repository_id(conn, repository)
            if repo_id is None:
                return False
            result = conn.execute(
                delete(tags).where(tags.c.repository_id == repo_id, tags.c.name == tag)
            )
            if result.rowcount > 0:
                emit(conn, events)
        return result.rowcount > 0

    def list_tags(self, repository: str, last: str | None, limit: int) -> list[str] | None:
        """Tag names in byte order after `last`; None when the repository is unknown."""
        with self._read() as conn:
            repo_id = self._repository_id(conn, repository)
            if repo_id is None:
                return None
            name = self._bytewise(tags.c.name)
            query = (
                select(tags.c.name)
                .where(tags.c.repository_id == repo_id)
                .order_by(name)
                .limit(limit)
            )
            if last is not None:
                query = query.where(name > _before_nul(last))
            return list(conn.execute(query).scalars())

    def list_referrers(
        self,
        repository: str,
        subject: str,
        artifact_type: str | None,
        last: str | None,
        limit: int,
    ) -> list[ReferrerRow]:
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
            query = query.where(manifests.c.digest > _before_nul(last))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            ReferrerRow(d, mt, s, at, json.loads(ann) if ann else None)
            for d, mt, s, at, ann in rows
        ]

    def count_rows(self, table_name: str) -> int:
        """Row count of a table (diagnostics and tests)."""
        table = {t.name: t for t in (blobs, manifests, tags, uploads, repositories)}[table_name]
        with self._read() as conn:
            return conn.execute(select(func.count()).select_from(table)).scalar_one()


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
    (by_tag, with_content): _manifest_query(by_tag, with_content)
    for by_tag in (True, False)
    for with_content in (True, False)
}
_REPOSITORY_BLOB = (
    select(blobs.c.digest, blobs.c.size, blobs.c.storage_key)
    .select_from(
        repository_blobs.join(blobs, blobs.c.digest == repository_blobs.c.digest).join(
            repositories, repositories.c.id == repository_blobs.c.repository_id
        )
    )
    .where(
        repositories.c.name == bindparam("repository"),
        repository_blobs.c.digest == bindparam("digest"),
    )
)


def _before_nul(value: str) -> str:
    """`value` cut at its first NUL: for names that hold no NUL (none can), `x > value` and
    `x > _before_nul(value)` agree, and PostgreSQL refuses NUL in text parameters."""
    return value.split("\x00", 1)[0]


class UploadBusy(Exception):
    """Another request is writing to this upload right now."""
