"""`post-push.chunks`: queue a `blob.chunk` job for each layer of a pushed image that is at
least `chunk_min_blob_size` (the push path never chunks; a pull never waits for it)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..jobs.tasks.chunks import KIND as CHUNK_KIND
from ..oci.mediatypes import IMAGE_TYPES

if TYPE_CHECKING:
    from ..bootstrap import Registry

NAME = "chunks"


class ChunkProcessor:
    """Turns a pushed image's large layers into chunking jobs (one per blob digest)."""

    name = NAME

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def wants(self, event: dict[str, Any]) -> bool:
        """Image manifests (an index has no layers of its own)."""
        return (event.get("payload") or {}).get("media_type") in IMAGE_TYPES

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue `blob.chunk` for each large layer of `repository@digest`."""
        with self.registry.database.read() as uow:
            row = uow.manifests.get(payload["repository"], payload["digest"], None, True)
        if row is None or row.content is None:
            return {"skipped": "the manifest is gone"}
        try:
            layers = json.loads(row.content).get("layers") or []
        except (ValueError, AttributeError):
            return {"skipped": "not a manifest object"}
        floor = self.registry.settings.chunk_min_blob_size
        queued = []
        for layer in layers:
            if not isinstance(layer, dict) or not isinstance(layer.get("digest"), str):
                continue
            if isinstance(layer.get("size"), int) and layer["size"] >= floor:
                digest = layer["digest"]
                self.registry.jobs.enqueue(CHUNK_KIND, {"digest": digest},
                                           unique_key=f"{CHUNK_KIND}:{digest}")
                queued.append(digest)
        return {"queued": queued}
