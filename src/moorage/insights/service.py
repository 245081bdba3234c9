"""Image size insights: computing an image's report (the `insights` job), storing and reading it.

The stored document (`GET /api/v1/insights/{repository}/{digest}`, `moorage insights --json`);
sizes are bytes, layers are numbered from 1 (the bottom layer), paths are absolute::

    {"repository": str, "digest": str, "media_type": str,
     "status": "done" | "failed" | "unsupported" | "index", "error": str | null,
     "created_at": float (Unix seconds; RFC 3339 in the API and `--json`),
     # "index": the platforms whose images have reports of their own
     "manifests": [{"digest": str, "platform": "os/arch[/variant]"}],
     # "done" (and the counters a "failed" run got to):
     "truncated": bool,               # more paths than insights_max_paths: lists are partial
     "limits": {"max_paths": int, "top": int},
     "totals": {"layers", "compressed", "uncompressed", "files", "file_bytes", "wasted": int},
     "layers": [{"index": int, "digest": str, "media_type": str, "compressed": int,
                 "uncompressed": int, "files": int, "file_bytes": int, "whiteouts": int,
                 "wasted": int,       # this layer's bytes later layers delete or overwrite
                 "shared_with": int,  # other manifests referencing the layer (as of reading)
                 "skipped": str | null}],
     "largest_files": [{"path": str, "size": int, "layer": int}],         # largest first
     "deleted" | "overwritten" | "duplicates": {                          # duplicates: same
         "files": int, "bytes": int,                                      # path, same size
         "largest": [{"path", "size", "layer", "by_layer"}]},
     "shared": {"layers": int, "bytes": int},  # layers (compressed) other images share now
     "advice": [{"rule": str, "layer": int, "bytes": int, "message": str, "paths": [str]}]}
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..oci.errors import ManifestUnknown
from ..oci.mediatypes import IMAGE_TYPES, INDEX_TYPES

if TYPE_CHECKING:
    from ..bootstrap import Registry
    from ..jobs.queue import Job

KIND = "insights"
DEFAULT_PLATFORM = "linux/amd64"


class NoInsights(ManifestUnknown):
    """The manifest has no insights report (yet)."""


def platform_of(desc: dict[str, Any]) -> str:
    """`os/arch[/variant]` of an index entry ("" when it names none)."""
    p = desc.get("platform") or {}
    parts = [str(p.get("os") or ""), str(p.get("architecture") or "")]
    if p.get("variant"):
        parts.append(str(p["variant"]))
    return "/".join(parts) if any(parts) else ""


def _share(report: dict[str, Any], shared: dict[str, int]) -> None:
    """Set the report's `shared_with` per layer and its `shared` totals from `shared`."""
    layers = report["layers"]
    for layer in layers:
        layer["shared_with"] = shared.get(layer["digest"], 0)
    held = [x for x in layers if x["shared_with"]]
    report["shared"] = {"layers": len(held), "bytes": sum(x["compressed"] for x in held)}


def unique_key(repository: str, digest: str) -> str:
    """The job key of one image's insights."""
    return f"{KIND}:{repository}@{digest}"


class InsightsService:
    """Runs the analysis over an image's blobs and keeps one report per manifest."""

    def __init__(self, registry: Registry) -> None:
        self.reg = registry

    # -- reading ------------------------------------------------------------------------------

    def resolve(self, ref: str, platform: str | None = None) -> tuple[str, str]:
        """(repository, digest) of `REPO:TAG` / `REPO@DIGEST`; an index is resolved to its
        image for `platform` (default linux/amd64, else its first image)."""
        from ..scan.service import split_reference

        repository, digest, tag = split_reference(ref)
        with self.reg.database.read() as uow:
            row = uow.manifests.get(repository, digest, tag, True)
        if row is None:
            raise ManifestUnknown(f"no manifest {ref}", detail={"reference": ref})
        if row.media_type not in INDEX_TYPES:
            return repository, str(row.digest)
        children = [d for d in json.loads(row.content or b"{}").get("manifests") or []
                    if isinstance(d, dict) and d.get("mediaType") in IMAGE_TYPES]
        if not children:
            raise ManifestUnknown(f"the index {ref} lists no image")
        wanted = platform or DEFAULT_PLATFORM
        for child in children:
            if platform_of(child) == wanted:
                return repository, str(child["digest"])
        if platform:
            listed = ", ".join(platform_of(c) or "?" for c in children)
            raise ManifestUnknown(f"the index {ref} has no {platform} image (it has {listed})")
        return repository, str(children[0]["digest"])

    def get(self, repository: str, digest: str) -> dict[str, Any] | None:
        """The stored report of `repository@digest` (None: none yet), its figures of layers
        shared with other images as they are now (later pushes change them)."""
        with self.reg.database.read() as uow:
            row = uow.insights.get(repository, digest)
            layers = (row or {}).get("report", {}).get("layers") or []
            digests = [x["digest"] for x in layers]
            shared = uow.insights.shared_with(row["manifest_id"], digests) if row else {}
        if row is None:
            return None
        report = row["report"]
        if layers:
            _share(report, shared)
        return {"repository": repository, "digest": digest, "status": row["status"],
                "error": row["error"], "created_at": row["created_at"], **report}

    def show(self, repository: str, digest: str) -> dict[str, Any]:
        """The stored report; MANIFEST_UNKNOWN (404) when there is none."""
        found = self.get(repository, digest)
        if found is None:
            raise NoInsights(f"no insights report for {repository}@{digest} (yet)",
                             detail={"repository": repository, "digest": digest})
        return found

    # -- queueing -----------------------------------------------------------------------------

    def queue(self, repository: str, digest: str, again: bool = False) -> Job:
        """Queue the `insights` job of `repository@digest` (one per manifest unless `again`)."""
        payload = {"repository": repository, "digest": digest}
        key = unique_key(repository, digest)
        if again:
            return self.reg.jobs.enqueue(KIND, payload, key)[0]
        return self.reg.jobs.enqueue_once(KIND, payload, key)[0]

    # -- the job ------------------------------------------------------------------------------

    def run(self, repository: str, digest: str) -> dict[str, Any]:
        """Compute and store the report of `repository@digest` (an index: queue its images)."""
        from ..jobs.queue import GiveUp
        from ..scan.image import Unsupported
        from ..scan.layers import ScanLimitExceeded
        from ..scan.processor import artifact_kind

        if self.reg.caches.holds(repository):
            return {"skipped": "in a pull-through cache namespace"}
        with self.reg.database.read() as uow:
            row = uow.manifests.get(repository, digest, None, True)
            manifest_id = uow.insights.manifest_id(repository, digest)
        if row is None or row.content is None or manifest_id is None:
            return {"skipped": "the manifest is gone"}
        doc = json.loads(row.content)
        base = {"media_type": row.media_type}
        if row.media_type in INDEX_TYPES:
            children = [c for c in doc.get("manifests") or []
                        if isinstance(c, dict) and c.get("mediaType") in IMAGE_TYPES]
            for child in children:
                self.queue(repository, str(child["digest"]))
            self._save(manifest_id, repository, digest, "index", {
                **base, "manifests": [{"digest": c["digest"], "platform": platform_of(c)}
                                      for c in children]}, None)
            return {"children": len(children)}
        if artifact_kind(doc) != "image":
            what = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
            self._save(manifest_id, repository, digest, "unsupported", base,
                       f"artifact type {what} is not a container image")
            return {"skipped": "not a container image"}
        layers = [d for d in doc.get("layers") or [] if isinstance(d, dict)]
        try:
            report = self._analyse(repository, layers)
        except Unsupported as exc:
            self._save(manifest_id, repository, digest, "unsupported", base, str(exc))
            return {"skipped": str(exc)}
        except ScanLimitExceeded as exc:
            self._save(manifest_id, repository, digest, "failed", base, str(exc))
            raise GiveUp(f"{type(exc).__name__}: {exc}") from exc
        self._save(manifest_id, repository, digest, "done", {**base, **report}, None)
        return {"layers": len(layers), "advice": len(report["advice"]),
                "wasted": report["totals"]["wasted"]}

    def _analyse(self, repository: str, layers: list[dict[str, Any]]) -> dict[str, Any]:
        from ..scan.image import ENCRYPTED, NON_DISTRIBUTABLE, Unsupported, is_tar_type
        from ..scan.layers import Limits
        from .advice import advise
        from .analysis import Analysis

        s = self.reg.settings
        analysis = Analysis(Limits(max_entries=s.scan_max_entries, max_bytes=s.scan_max_bytes,
                                   max_ratio=s.scan_max_ratio),
                            top=s.insights_top_files, max_paths=s.insights_max_paths)
        for desc in layers:
            digest, media_type = str(desc.get("digest", "")), str(desc.get("mediaType", ""))
            if ENCRYPTED in media_type:
                raise Unsupported(f"layer {digest} is encrypted ({media_type})")
            if any(word in media_type for word in NON_DISTRIBUTABLE):
                analysis.skip(desc, "non-distributable layer")
                continue
            if not is_tar_type(media_type):
                analysis.skip(desc, f"not a tar layer ({media_type})")
                continue
            chunks = self._open(repository, digest)
            if chunks is None:
                analysis.skip(desc, "blob not in this registry")
                continue
            analysis.layer(desc, chunks)
        report = analysis.report()
        report["advice"] = advise(analysis.layers, report["largest_files"])
        return report

    def _open(self, repository: str, digest: str) -> Iterable[bytes] | None:
        from ..oci.digest import parse_digest
        from ..oci.errors import BlobUnknown, DigestInvalid

        try:
            row = self.reg.blobs.locate(repository, parse_digest(digest))
        except (BlobUnknown, DigestInvalid):
            return None
        return self.reg.blob_store.open_blob(row.storage_key, 0, row.size)

    def _save(self, manifest_id: int, repository: str, digest: str, status: str,
              report: dict[str, Any], error: str | None) -> None:
        with self.reg.database.write() as uow:
            uow.insights.save(manifest_id, repository, digest, status, report, error,
                              time.time())
