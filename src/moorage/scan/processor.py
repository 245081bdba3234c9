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
    from .image import Catalogue
    from .inspect import LayerInspector

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
MODEL_WORD = ".model."  # ModelPack (application/vnd.cncf.model.*) and kin name models so


def sbom_subject(manifest: dict[str, Any]) -> str | None:
    """The digest of the manifest an SBOM referrer describes (None: not an SBOM referrer)."""
    subject = manifest.get("subject")
    if isinstance(subject, dict) and str(manifest.get("artifactType") or "").startswith(
            SBOM_TYPES):
        return str(subject.get("digest") or "") or None
    return None


def artifact_kind(manifest: dict[str, Any]) -> str | None:
    """`image` (a container image: SBOM and full scan), `model` (a model artifact: secrets and
    model files) or None (not scanned)."""
    config = str((manifest.get("config") or {}).get("mediaType") or "")
    artifact = str(manifest.get("artifactType") or "")
    if not artifact and config in IMAGE_CONFIGS:
        return "image"
    if MODEL_WORD in artifact or MODEL_WORD in config:
        return "model"
    return None


class SbomProcessor:
    """Generates and stores the SBOM of each pushed image manifest (and index child), and the
    scan report of every pushed manifest."""

    name = NAME

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def wants(self, event: dict[str, Any]) -> bool:
        """Image manifests and indexes (an index queues its image children)."""
        from ..events.processors import image_or_index

        return image_or_index(event)

    def queued(self, repository: str, digest: str) -> None:
        """The manifest's scan report says pending from now on (unless it has one)."""
        self.registry.scans.queued(repository, digest)

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Read the image's layers once: its SBOM referrer (unless it has one) and its scan
        report (packages, vulnerabilities, secrets, model findings) with an honest status."""
        # Imported here, not at module level: the server process loads this module at start.
        from ..jobs.queue import GiveUp
        from .image import Unsupported
        from .layers import ScanLimitExceeded
        from .reports import package_rows
        from .sbom import document

        repository, digest = payload["repository"], payload["digest"]
        if self.registry.caches.holds(repository):
            # A mirror holds the upstream's content only (and its layers come on demand).
            return {"skipped": "in a pull-through cache namespace"}
        with self.registry.database.read() as uow:
            row = uow.manifests.get(repository, digest, None, True)
        if row is None or row.content is None:
            return {"skipped": "the manifest is gone"}
        reports = self.registry.scans
        doc = json.loads(row.content)
        if row.media_type in INDEX_TYPES:
            children = self._queue_children(repository, doc)
            reports.record(repository, digest, "unsupported",
                           reason="an image index: each image it lists has its own report",
                           kind="index")
            return {"children": children}
        if sbom_subject(doc) is not None:
            # An SBOM of another manifest (ours or the build's) is never scanned: no report.
            reports.forget(repository, digest)
            return {"skipped": "an SBOM referrer"}
        kind = artifact_kind(doc)
        if kind is None:
            what = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
            reports.record(repository, digest, "unsupported",
                           reason=f"artifact type {what} is not scanned (only container "
                                  "images and model artifacts are)", kind="other")
            return {"skipped": "not a container image"}
        try:
            found, inspector = self._scan(repository, doc.get("layers") or [])
        except Unsupported as exc:
            reports.record(repository, digest, "unsupported", reason=str(exc), kind=kind)
            return {"skipped": str(exc)}
        except ScanLimitExceeded as exc:
            reports.record(repository, digest, "failed", error=f"{type(exc).__name__}: {exc}",
                           kind=kind)
            # The same image fails the same way every time: no retries, nothing stored.
            raise GiveUp(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            reports.record(repository, digest, "failed", error=f"{type(exc).__name__}: {exc}",
                           kind=kind)
            raise
        result: dict[str, Any] = {}
        if kind == "image":
            existing = self._existing_sbom(repository, digest)
            if existing:
                result = {"skipped": f"has an SBOM referrer {existing}"}
            else:
                sbom = document(repository, digest, found, time.time())
                referrer = asyncio.run(self._store(repository, digest, row.media_type, row.size,
                                                   sbom))
                log.info("sbom stored", extra={"repository": repository, "digest": digest,
                                               "sbom": referrer})
                result = {"sbom": referrer, "components": len(sbom["components"])}
        os_info = found.os
        reports.record(
            repository, digest, "done",
            os={"id": os_info.id, "version_id": os_info.version_id,
                "ecosystem": os_info.ecosystem} if os_info else None,
            packages=package_rows(found.packages, os_info),
            secrets=[f.to_dict() for f in inspector.secrets],
            model_findings=[f.to_dict() for f in inspector.models], kind=kind)
        return result or {"scanned": kind}

    def _queue_children(self, repository: str, index: dict[str, Any]) -> int:
        from ..events.processors import job_kind

        queued = 0
        for child in index.get("manifests") or []:
            if not isinstance(child, dict) or child.get("mediaType") not in IMAGE_TYPES:
                continue
            self.queued(repository, str(child["digest"]))
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

    def _scan(self, repository: str, layers: list[dict[str, Any]]
              ) -> tuple[Catalogue, LayerInspector]:
        """One read of the layers: the catalogue and what the inspector found."""
        from .image import catalogue
        from .inspect import LayerInspector
        from .layers import Limits

        s = self.registry.settings
        limits = Limits(max_entries=s.scan_max_entries, max_bytes=s.scan_max_bytes,
                        max_ratio=s.scan_max_ratio)
        inspector = LayerInspector(s.scan_secret_max_file_bytes, s.scan_model_max_bytes,
                                   s.scan_secrets, s.scan_models)
        found = catalogue(layers, lambda d: self._open(repository, d), limits, inspector)
        return found, inspector

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
