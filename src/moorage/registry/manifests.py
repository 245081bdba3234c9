"""Manifests and tags: push (verbatim bytes), pull, delete, list."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..events.types import SYSTEM, Actor, ManifestDeleted, ManifestPushed, TagDeleted, TagMoved
from ..events.types import records as event_records
from ..metadata.store import ManifestRow, MetadataStore, NewManifest
from ..oci.digest import DEFAULT_ALGORITHM, Digest, digest_bytes
from ..oci.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
    NameUnknown,
)
from ..oci.manifest import ParsedManifest, parse_manifest
from ..oci.reference import validate_tag

if TYPE_CHECKING:
    from .lifecycle import LifecycleService

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
        store: MetadataStore,
        allow_sparse: bool,
        max_bytes: int,
        lifecycle: LifecycleService | None = None,
    ) -> None:
        self.store = store
        self.allow_sparse = allow_sparse
        self.max_bytes = max_bytes
        self.lifecycle = lifecycle

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
        guard = None
        if self.lifecycle is not None:
            # Re-checked inside the write transaction: references (against a concurrent GC
            # sweep), immutable tags, and the namespace quota.
            guard = self.lifecycle.manifest_guard(
                repository, record, unique_tags, not self.allow_sparse,
                {str(d.digest) for d in parsed.blobs if d.non_distributable},
                {str(d.digest): d.size for d in parsed.blobs if not d.non_distributable},
            )
        events = event_records(
            ManifestPushed(actor=actor, repository=repository, digest=record.digest,
                           tag=None if isinstance(reference, Digest) else reference,
                           reference=str(reference), media_type=record.media_type,
                           size=len(content)),
            *(TagMoved(actor=actor, repository=repository, digest=record.digest, tag=t)
              for t in unique_tags),
        )
        # One trip to a worker thread for the whole database part of a push.
        await asyncio.to_thread(
            self._store, repository, parsed, record, unique_tags, guard, events
        )
        log.info(
            "manifest pushed",
            extra={"repository": repository, "digest": str(digest), "tags": unique_tags},
        )
        return PushedManifest(digest, record.subject_digest, unique_tags)

    def _store(
        self,
        repository: str,
        parsed: ParsedManifest,
        record: NewManifest,
        tags: list[str],
        guard: object,
        events: list[dict],
    ) -> None:
        if guard is None and not self.allow_sparse:
            self._check_references(repository, parsed)  # the lifecycle guard checks in-transaction
        self.store.put_manifest(repository, record, tags, guard, events)

    def _check_references(self, repository: str, parsed: ParsedManifest) -> None:
        wanted = [d for d in parsed.blobs if not d.non_distributable]
        sizes = self.store.linked_blob_sizes(repository, (str(d.digest) for d in wanted))
        for descriptor in wanted:
            size = sizes.get(str(descriptor.digest))
            if size is None:
                raise ManifestBlobUnknown(
                    f"blob {descriptor.digest} is not in {repository}",
                    detail={"digest": str(descriptor.digest)},
                )
            if size != descriptor.size:
                raise ManifestInvalid(
                    f"descriptor of {descriptor.digest} says {descriptor.size} bytes, "
                    f"the blob has {size}"
                )
        children = {str(d.digest) for d in parsed.children}
        missing = children - self.store.present_manifests(repository, children)
        if missing:
            first = min(missing)
            raise ManifestBlobUnknown(
                f"manifest {first} is not in {repository}", detail={"digest": first}
            )

    def get(self, repository: str, reference: str | Digest, with_content: bool,
            actor: Actor | None = None) -> ManifestRow:
        """Resolve a tag or digest to the stored manifest; with an `actor`, a recorded pull."""
        if isinstance(reference, Digest):
            row = self.store.get_manifest(repository, str(reference), None, with_content)
        else:
            row = self.store.get_manifest(repository, None, reference, with_content)
        if row is None:
            raise ManifestUnknown(detail={"reference": str(reference)})
        if self.lifecycle is not None:
            self.lifecycle.pulls.record(repository, str(reference), actor)
        return row

    async def delete(self, repository: str, reference: str | Digest, actor: Actor = SYSTEM
                     ) -> None:
        """By tag: remove the tag only. By digest: remove the manifest and its tags."""
        lifecycle = self.lifecycle
        if isinstance(reference, Digest):
            if lifecycle is not None:
                await asyncio.to_thread(lifecycle.check_manifest_delete, repository, str(reference))
            gone = event_records(
                ManifestDeleted(actor=actor, repository=repository, digest=str(reference)))
            removed = await asyncio.to_thread(
                self.store.delete_manifest, repository, str(reference), gone
            )
        elif lifecycle is not None:
            await asyncio.to_thread(lifecycle.check_tag_delete, repository, reference)
            removed = await asyncio.to_thread(
                lifecycle.soft_delete_tag, repository, reference, actor.name,
                lambda digest: event_records(
                    TagDeleted(actor=actor, repository=repository, tag=reference, digest=digest)),
            )
        else:
            removed = await asyncio.to_thread(
                self.store.delete_tag, repository, reference,
                event_records(TagDeleted(actor=actor, repository=repository, tag=reference)),
            )
        if not removed:
            raise ManifestUnknown(detail={"reference": str(reference)})
        log.info("manifest deleted", extra={"repository": repository, "reference": str(reference)})

    def tags(self, repository: str, last: str | None, limit: int) -> list[str]:
        """A page of tag names in byte order; NAME_UNKNOWN for an unknown repository."""
        names = self.store.list_tags(repository, last, limit)
        if names is None:
            raise NameUnknown(detail={"name": repository})
        return names

    def catalog(self, last: str | None, limit: int) -> list[str]:
        """A page of repository names in byte order."""
        return self.store.list_repositories(last, limit)
