"""`post-push.sbom`: a CycloneDX SBOM for each pushed image, stored as its OCI referrer.

The SBOM is pushed through the registry's own upload and manifest services as the system
principal, untagged and by digest: events, quotas and GC treat it like any referrer (it is
counted by the namespace's quota), and tag immutability never applies to it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from ..oci.mediatypes import IMAGE_TYPES, INDEX_TYPES, OCI_EMPTY, OCI_MANIFEST

if TYPE_CHECKING:
    from ..bootstrap import Registry

log = logging.getLogger(__name__)

NAME = "sbom"
ARTIFACT_TYPE = "application/vnd.cyclonedx+json"
# Referrers of these artifact types are SBOMs already (uploaded by the build, or ours).
SBOM_TYPES = ("application/vnd.cyclonedx", "application/spdx", "text/spdx")
IMAGE_CONFIGS = frozenset({"application/vnd.oci.image.config.v1+json",
                           "application/vnd.docker.container.image.v1+json"})
EMPTY_JSON = b"{}"
GENERATOR_KEY = "org.moorage.sbom.generator"
CREATED_KEY = "org.opencontainers.image.created"


class SbomProcessor:
    """Generates and stores the SBOM of each pushed image manifest (and index child)."""

    name = NAME

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def wants(self, event: dict[str, Any]) -> bool:
        """Image manifests and indexes (an index queues its image children)."""
        media_type = (event.get("payload") or {}).get("media_type")
        return media_type in IMAGE_TYPES or media_type in INDEX_TYPES

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Catalogue the image and push its SBOM referrer, unless it has one already."""
        repository, digest = payload["repository"], payload["digest"]
        if self.registry.caches.holds(repository):
            # A mirror holds the upstream's content only (and its layers come on demand).
            return {"skipped": "in a pull-through cache namespace"}
        with self.registry.database.read() as uow:
            row = uow.manifests.get(repository, digest, None, True)
        if row is None or row.content is None:
            return {"skipped": "the manifest is gone"}
        doc = json.loads(row.content)
        if row.media_type in INDEX_TYPES:
            return {"children": self._queue_children(repository, doc)}
        if doc.get("artifactType") or (doc.get("config") or {}).get("mediaType") not in (
                IMAGE_CONFIGS):
            return {"skipped": "not a container image"}
        existing = self._existing_sbom(repository, digest)
        if existing:
            return {"skipped": f"has an SBOM referrer {existing}"}
        sbom = self._generate(repository, digest, doc.get("layers") or [])
        referrer = asyncio.run(self._store(repository, digest, row.media_type, row.size, sbom))
        log.info("sbom stored", extra={"repository": repository, "digest": digest,
                                       "sbom": referrer})
        return {"sbom": referrer, "components": len(sbom["components"])}

    def _queue_children(self, repository: str, index: dict[str, Any]) -> int:
        from ..events.processors import job_kind

        queued = 0
        for child in index.get("manifests") or []:
            if not isinstance(child, dict) or child.get("mediaType") not in IMAGE_TYPES:
                continue
            _, new = self.registry.jobs.enqueue_once(
                job_kind(self), {"repository": repository, "digest": child["digest"],
                                 "media_type": child["mediaType"], "reference": None,
                                 "size": child.get("size"), "event_id": None, "actor": None},
                f"{NAME}:{repository}@{child['digest']}")
            queued += new
        return queued

    def _existing_sbom(self, repository: str, digest: str) -> str | None:
        from ..oci.digest import parse_digest

        page = self.registry.referrers.list(repository, parse_digest(digest), None, None, 1000)
        for desc in page.descriptors:
            if str(desc.get("artifactType", "")).startswith(SBOM_TYPES):
                return str(desc["digest"])
        return None

    def _generate(self, repository: str, digest: str, layers: list[dict[str, Any]]
                  ) -> dict[str, Any]:
        from ..jobs.queue import GiveUp
        from .image import Unsupported, catalogue
        from .layers import Limits, ScanLimitExceeded
        from .sbom import document

        s = self.registry.settings
        limits = Limits(max_entries=s.scan_max_entries, max_bytes=s.scan_max_bytes,
                        max_ratio=s.scan_max_ratio)
        try:
            found = catalogue(layers, lambda d: self._open(repository, d), limits)
        except (ScanLimitExceeded, Unsupported) as exc:
            # The same image fails the same way every time: no retries, nothing stored.
            raise GiveUp(f"{type(exc).__name__}: {exc}") from exc
        return document(repository, digest, found, time.time())

    def _open(self, repository: str, digest: str) -> Iterable[bytes] | None:
        from ..oci.digest import parse_digest
        from ..oci.errors import BlobUnknown

        try:
            row = self.registry.blobs.locate(repository, parse_digest(digest))
        except BlobUnknown:
            return None
        return self.registry.blob_store.open_blob(row.storage_key, 0, row.size)

    async def _store(self, repository: str, subject: str, subject_type: str, subject_size: int,
                     sbom: dict[str, Any]) -> str:
        from ..events.types import SYSTEM
        from ..oci.digest import digest_bytes

        body = json.dumps(sbom, separators=(",", ":"), sort_keys=True).encode()
        for blob in (body, EMPTY_JSON):
            await self.registry.uploads.push_whole(repository, digest_bytes(blob, "sha256"),
                                                   _once(blob), len(blob), SYSTEM)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": {"mediaType": OCI_EMPTY, "digest": str(digest_bytes(EMPTY_JSON, "sha256")),
                       "size": len(EMPTY_JSON), "data": "e30="},
            "layers": [{"mediaType": ARTIFACT_TYPE, "digest": str(digest_bytes(body, "sha256")),
                        "size": len(body)}],
            "subject": {"mediaType": subject_type, "digest": subject, "size": subject_size},
            "annotations": {CREATED_KEY: sbom["metadata"]["timestamp"],
                            GENERATOR_KEY: "moorage"},
        }
        content = json.dumps(manifest, separators=(",", ":")).encode()
        digest = digest_bytes(content, "sha256")
        await self.registry.manifests.push(repository, digest, content, OCI_MANIFEST, [], SYSTEM)
        return str(digest)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
