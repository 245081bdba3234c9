"""OSV data carried as an OCI artifact, so a connected site feeds air-gapped ones by replication.

`moorage vulndb publish PATH... REPO:TAG` pushes one; `moorage vulndb import oci://REPO:TAG`
(and the `vulndb.import-oci` job, `vulndb_oci_ref`) imports one. The artifact: artifactType
`application/vnd.osv.data.v1`, the empty config, one layer per file, of media type
`application/vnd.osv.data.v1+zip` (an OSV `all.zip` export) or `application/vnd.osv.data.v1+json`
(one OSV record, or a JSON array of them); `application/zip` and `application/json` layers are
read too. Each layer is streamed to a temporary file (a zip is read from its end) and imported
like a path: nothing is held in memory whole.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..oci.mediatypes import OCI_EMPTY, OCI_MANIFEST
from .sources import SourceError

if TYPE_CHECKING:
    from ..metadata.uow import Database
    from ..registry.blobs import BlobService
    from ..registry.manifests import ManifestService
    from ..registry.uploads import UploadService
    from ..storage.base import BlobStore
    from .vulndb import ImportReport, VulnDatabase

ARTIFACT_TYPE = "application/vnd.osv.data.v1"
ZIP_LAYER = ARTIFACT_TYPE + "+zip"
JSON_LAYER = ARTIFACT_TYPE + "+json"
SUFFIXES = {ZIP_LAYER: ".zip", JSON_LAYER: ".json", "application/zip": ".zip",
            "application/json": ".json"}
SCHEME = "oci://"
TITLE = "org.opencontainers.image.title"
EMPTY_JSON = b"{}"
CHUNK = 1 << 20


def oci_reference(source: str) -> str | None:
    """`REPO:TAG` or `REPO@DIGEST` of an `oci://` source, None for a path."""
    return source[len(SCHEME):] if source.startswith(SCHEME) else None


class OsvArtifacts:
    """Imports OSV data from an artifact of this registry, and publishes one."""

    def __init__(self, database: Database, manifests: ManifestService, blobs: BlobService,
                 blob_store: BlobStore, uploads: UploadService, vulndb: VulnDatabase,
                 spool_dir: str | None) -> None:
        self.database = database
        self.manifests = manifests
        self.blobs = blobs
        self.blob_store = blob_store
        self.uploads = uploads
        self.vulndb = vulndb
        self.spool_dir = spool_dir

    def resolve(self, ref: str) -> tuple[str, str, list[dict[str, Any]]]:
        """(repository, manifest digest, OSV layers) of `ref`; SourceError when it is not an
        OSV artifact (MANIFEST_UNKNOWN when it does not exist)."""
        from ..oci.digest import parse_digest
        from ..oci.reference import validate_name
        from .service import split_reference

        repository, digest, tag = split_reference(ref)
        validate_name(repository)
        row = self.manifests.get(repository, parse_digest(digest) if digest else str(tag), True)
        try:
            doc = json.loads(row.content or b"")
        except ValueError:
            raise SourceError(f"{ref} is not a JSON manifest") from None
        layers = doc.get("layers") if isinstance(doc, dict) else None
        if not isinstance(layers, list) or not layers:
            raise SourceError(f"{ref} is not an OSV data artifact: it has no layers (push one "
                              f"with `moorage vulndb publish PATH... {ref}`)")
        for layer in layers:
            if not isinstance(layer, dict) or layer.get("mediaType") not in SUFFIXES:
                what = layer.get("mediaType") if isinstance(layer, dict) else layer
                raise SourceError(f"{ref} is not an OSV data artifact: a layer is {what}, not "
                                  f"{ZIP_LAYER} or {JSON_LAYER}")
        return repository, row.digest, layers

    def import_ref(self, ref: str, progress: Callable[[ImportReport], None] | None = None
                   ) -> tuple[ImportReport, str]:
        """Import the OSV layers of artifact `ref` (and remember its digest for `refresh`); the
        import report and the digest read."""
        from ..oci.digest import parse_digest

        repository, digest, layers = self.resolve(ref)
        with tempfile.TemporaryDirectory(prefix="moorage-osv-", dir=self.spool_dir) as tmp:
            paths = []
            for i, layer in enumerate(layers):
                row = self.blobs.locate(repository, parse_digest(str(layer["digest"])))
                path = Path(tmp) / f"layer-{i}{SUFFIXES[layer['mediaType']]}"
                with path.open("wb") as out:
                    for chunk in self.blob_store.open_blob(row.storage_key, 0, row.size):
                        out.write(chunk)
                paths.append(path)
            report = self.vulndb.import_paths(paths, progress=progress)
        if not report.refused:
            with self.database.write() as uow:
                uow.vulns.mark_source(ref, digest, time.time())
        return report, digest

    def refresh(self, ref: str) -> dict[str, Any]:
        """Import `ref` unless the digest it names now was imported already (the periodic job)."""
        _, digest, _ = self.resolve(ref)
        with self.database.read() as uow:
            if uow.vulns.source_digest(ref) == digest:
                return {"skipped": "imported already", "digest": digest}
        report, digest = self.import_ref(ref)
        return {"digest": digest, **report.to_dict()}

    async def publish(self, paths: Sequence[Path], ref: str) -> str:
        """Push `paths` (OSV zips or JSON files) as one OSV artifact tagged `ref` (REPO:TAG);
        its digest. SourceError when a path is missing or a directory."""
        from ..events.types import SYSTEM
        from ..oci.digest import digest_bytes, parse_digest
        from ..oci.reference import validate_name
        from .service import split_reference
        from .sources import _is_zip

        repository, digest, tag = split_reference(ref)
        validate_name(repository)
        if digest is not None or tag is None:
            raise SourceError(f"publish to REPO:TAG, not {ref}")
        layers = []
        for path in paths:
            if not path.is_file():
                raise SourceError(f"{path}: not a file (publish all.zip exports or JSON files)")
            hashed, size = _sha256(path)
            await self.uploads.push_whole(repository, parse_digest(hashed), _read(path), size,
                                          SYSTEM)
            layers.append({"mediaType": ZIP_LAYER if _is_zip(path) else JSON_LAYER,
                           "digest": hashed, "size": size, "annotations": {TITLE: path.name}})
        empty = digest_bytes(EMPTY_JSON, "sha256")
        await self.uploads.push_whole(repository, empty, _once(EMPTY_JSON), len(EMPTY_JSON),
                                      SYSTEM)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": ARTIFACT_TYPE,
                    "config": {"mediaType": OCI_EMPTY, "digest": str(empty),
                               "size": len(EMPTY_JSON), "data": "e30="},
                    "layers": layers}
        content = json.dumps(manifest, separators=(",", ":")).encode()
        await self.manifests.push(repository, tag, content, OCI_MANIFEST, [], SYSTEM)
        return str(digest_bytes(content, "sha256"))


def _sha256(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


async def _read(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
