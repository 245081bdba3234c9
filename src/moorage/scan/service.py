"""Reading stored SBOMs back: the CycloneDX referrer of an image and its package list."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..oci.digest import parse_digest
from ..oci.errors import ManifestUnknown

if TYPE_CHECKING:
    from ..metadata.uow import Database
    from ..registry.blobs import BlobService
    from ..registry.referrers import ReferrerService
    from ..storage.base import BlobStore

CYCLONEDX = "application/vnd.cyclonedx"
MAX_SBOM_BYTES = 64 << 20


class NoSbom(ManifestUnknown):
    """The image has no readable CycloneDX SBOM referrer (yet)."""


@dataclass(frozen=True, slots=True)
class StoredSbom:
    """An image's SBOM as stored: which image, which referrer, the document."""

    repository: str
    subject: str
    referrer: str
    generated: bool
    document: dict[str, Any]


def split_reference(ref: str) -> tuple[str, str | None, str | None]:
    """`REPO@DIGEST` or `REPO:TAG` as (repository, digest, tag)."""
    if "@" in ref:
        repo, _, digest = ref.partition("@")
        return repo, str(parse_digest(digest)), None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], None, ref[colon + 1:]
    return ref, None, "latest"


class SbomService:
    """Finds the CycloneDX referrer of an image and reads its document."""

    def __init__(self, database: Database, referrers: ReferrerService, blobs: BlobService,
                 store: BlobStore) -> None:
        self.database = database
        self.referrers = referrers
        self.blobs = blobs
        self.store = store

    def show(self, ref: str) -> StoredSbom:
        """The SBOM of the image `ref` names; MANIFEST_UNKNOWN if either is missing."""
        repository, digest, tag = split_reference(ref)
        with self.database.read() as uow:
            row = uow.manifests.get(repository, digest, tag, False)
        if row is None:
            raise ManifestUnknown(f"no manifest {ref}", detail={"reference": ref})
        page = self.referrers.list(repository, parse_digest(row.digest), None, None, 1000)
        sboms = [d for d in page.descriptors
                 if str(d.get("artifactType", "")).startswith(CYCLONEDX)]
        if not sboms:
            raise NoSbom(f"{repository}@{row.digest} has no CycloneDX SBOM referrer (yet)")
        # An uploaded SBOM (from the build) is preferred to one Moorage generated.
        sboms.sort(key=lambda d: (d.get("annotations") or {}).get(
            "org.moorage.sbom.generator") == "moorage")
        chosen = sboms[0]
        with self.database.read() as uow:
            referrer = uow.manifests.get(repository, chosen["digest"], None, True)
        if referrer is None or referrer.content is None:
            raise NoSbom(f"the SBOM referrer {chosen['digest']} is gone")
        layers = json.loads(referrer.content).get("layers") or []
        layer = next((x for x in layers if str(x.get("mediaType", "")).startswith(CYCLONEDX)),
                     layers[0] if layers else None)
        if layer is None:
            raise NoSbom(f"the SBOM referrer {chosen['digest']} has no layer")
        blob = self.blobs.locate(repository, parse_digest(layer["digest"]))
        if blob.size > MAX_SBOM_BYTES:
            raise NoSbom(f"the SBOM of {blob.size} bytes is larger than {MAX_SBOM_BYTES}")
        data = b"".join(self.store.open_blob(blob.storage_key, 0, blob.size))
        generated = (chosen.get("annotations") or {}).get(
            "org.moorage.sbom.generator") == "moorage"
        return StoredSbom(repository, row.digest, str(chosen["digest"]), generated,
                          json.loads(data))
