"""Manifests and tags: push (verbatim bytes), pull, delete, list."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..auth.scopes import namespace_of
from ..events.types import SYSTEM, Actor, ManifestDeleted, ManifestPushed, TagDeleted, TagMoved
from ..events.types import records as event_records
from ..metadata.rows import ManifestRow, NewManifest
from ..oci.digest import DEFAULT_ALGORITHM, Digest, digest_bytes
from ..oci.errors import (
    DigestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
    NameUnknown,
)
from ..oci.manifest import ParsedManifest, parse_manifest
from ..oci.reference import validate_tag
from ..policy.admission import AdmissionChain, PullRequest, PushRequest
from .deletion import DeletionService, refuse_immutable_manifest_delete

if TYPE_CHECKING:
    from ..metadata.uow import Database
    from .pulls import PullRecorder

INLINE_PARSE_BYTES = 64 * 1024  # real manifests are a few KiB: parsed without a thread hop
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PushedManifest:
    """What a manifest PUT answers with."""

    digest: Digest
    subject: str | None
    tags: list[str]


class ManifestService:
    """Store and serve manifests; tags are names for manifests within a repository."""

    def __init__(
        self,
        database: Database,
        max_bytes: int,
        deletion: DeletionService,
        pulls: PullRecorder,
        admission: AdmissionChain,
    ) -> None:
        self.database = database
        self.max_bytes = max_bytes
        self.deletion = deletion
        self.pulls = pulls
        self.admission = admission

    async def push(
        self,
        repository: str,
        reference: str | Digest,
        content: bytes,
        content_type: str | None,
        extra_tags: list[str],
        actor: Actor = SYSTEM,
    ) -> PushedManifest:
        """Validate and store a manifest under a tag or its digest, plus any `?tag=` names."""
        if len(content) > self.max_bytes:
            raise ManifestTooLarge(f"manifest exceeds {self.max_bytes} bytes")
        if isinstance(reference, Digest):
            digest = digest_bytes(content, reference.algorithm)
            if digest != reference:
                raise DigestInvalid(
                    f"manifest digest is {digest}, not {reference}", detail={"digest": str(reference)}
                )
            tag_names = [validate_tag(t) for t in extra_tags]
        else:
            digest = digest_bytes(content, DEFAULT_ALGORITHM)
            tag_names = [reference, *(validate_tag(t) for t in extra_tags)]
        if len(content) > INLINE_PARSE_BYTES:
            # A hostile multi-megabyte body takes a second to refuse: keep the event loop free.
            parsed = await asyncio.to_thread(parse_manifest, content, content_type)
        else:
            parsed = parse_manifest(content, content_type)
        record = NewManifest(
            digest=str(digest),
            media_type=parsed.media_type,
            content=content,
            artifact_type=parsed.artifact_type,
            subject_digest=str(parsed.subject.digest) if parsed.subject else None,
            annotations=parsed.annotations,
            blob_digests=tuple(str(d.digest) for d in parsed.blobs),
            child_digests=tuple(str(d.digest) for d in parsed.children),
        )
        unique_tags = list(dict.fromkeys(tag_names))
        pushed = ManifestPushed(actor=actor, repository=repository, digest=record.digest,
                                tag=None if isinstance(reference, Digest) else reference,
                                reference=str(reference), media_type=record.media_type,
                                size=len(content))
        moved = [TagMoved(actor=actor, repository=repository, digest=record.digest, tag=t)
                 for t in unique_tags]
        # One trip to a worker thread for the whole database part of a push.
        await asyncio.to_thread(self._store, repository, parsed, record, unique_tags, pushed,
                                moved)
        # Debug: the access log and the audit log record every push already.
        log.debug(
            "manifest pushed",
            extra={"repository": repository, "digest": str(digest), "tags": unique_tags},
        )
        return PushedManifest(digest, record.subject_digest, unique_tags)

    def _store(self, repository: str, parsed: ParsedManifest, record: NewManifest,
               tags: list[str], pushed: ManifestPushed, moved: list[TagMoved]) -> None:
        """Check and store a manifest, move its tags and append its events: one transaction."""
        with self.database.write() as uow:
            repo_id = uow.repositories.ensure(repository, shared_lock=True)
            uow.blobs.refresh_links(repo_id, record.blob_digests)
            self.admission.check_push(uow, PushRequest(
                repository=repository,
                namespace=namespace_of(repository),
                repository_id=repo_id,
                digest=record.digest,
                size=len(record.content),
                blob_digests=record.blob_digests,
                child_digests=record.child_digests,
                declared_sizes={str(d.digest): d.size for d in parsed.blobs
                                if not d.non_distributable},
                non_distributable=frozenset(str(d.digest) for d in parsed.blobs
                                            if d.non_distributable),
                tags=tuple(tags),
            ))
            stored = uow.manifests.put(repo_id, repository, record)
            uow.tags.move(repo_id, tags, record.digest)
            uow.emit(event_records(pushed if stored else replace(pushed, stored=False), *moved))

    def get(self, repository: str, reference: str | Digest, with_content: bool,
            actor: Actor | None = None) -> ManifestRow:
        """Resolve a tag or digest to the stored manifest, once the pull checks let it be
        served; with an `actor`, a recorded pull."""
        by_digest = isinstance(reference, Digest)
        with self.database.read() as uow:
            row = uow.manifests.get(repository, str(reference) if by_digest else None,
                                    None if by_digest else str(reference), with_content)
            if row is None:
                raise ManifestUnknown(detail={"reference": str(reference)})
            if self.admission.pull:
                self.admission.check_pull(uow, PullRequest(
                    repository=repository, namespace=namespace_of(repository),
                    reference=str(reference), digest=row.digest, media_type=row.media_type,
                    actor=actor))
        self.pulls.record(repository, str(reference), actor)
        return row

    async def pull(self, repository: str, reference: str | Digest, with_content: bool,
                   actor: Actor | None = None) -> tuple[ManifestRow, str | None]:
        """`get` from the request path (inline on embedded SQLite, else in a thread): the row
        and a `Warning` header value for the client (None here; the cache may add one)."""
        if self.database.reads_inline:
            return self.get(repository, reference, with_content, actor), None
        row = await asyncio.to_thread(self.get, repository, reference, with_content, actor)
        return row, None

    async def delete(self, repository: str, reference: str | Digest, actor: Actor = SYSTEM
                     ) -> None:
        """By tag: remove the tag only (restorable). By digest: remove the manifest and its
        tags."""
        if isinstance(reference, Digest):
            removed = await asyncio.to_thread(self._delete_manifest, repository, reference, actor)
        else:
            await asyncio.to_thread(self.deletion.check_tag_delete, repository, reference)
            removed = await asyncio.to_thread(
                self.deletion.soft_delete_tag, repository, reference, actor.name,
                lambda digest: event_records(
                    TagDeleted(actor=actor, repository=repository, tag=reference, digest=digest)),
            )
        if not removed:
            raise ManifestUnknown(detail={"reference": str(reference)})
        log.info("manifest deleted", extra={"repository": repository, "reference": str(reference)})

    def _delete_manifest(self, repository: str, digest: Digest, actor: Actor) -> bool:
        with self.database.write() as uow:
            refuse_immutable_manifest_delete(uow, repository, str(digest))
            removed = uow.manifests.delete(repository, str(digest))
            if removed:
                uow.emit(event_records(
                    ManifestDeleted(actor=actor, repository=repository, digest=str(digest))))
            return removed

    def tags(self, repository: str, last: str | None, limit: int) -> list[str]:
        """A page of tag names in byte order (none for `limit` 0); NAME_UNKNOWN for an unknown
        repository."""
        with self.database.read() as uow:
            names = uow.tags.list(repository, last, limit)
        if names is None:
            raise NameUnknown(detail={"name": repository})
        return names
