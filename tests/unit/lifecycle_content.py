"""Content for the lifecycle unit tests, pushed through the registry's own services."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator

from moorage.bootstrap import Registry
from moorage.oci.digest import digest_bytes

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def push_blob(registry: Registry, repository: str, data: bytes) -> str:
    """Upload `data` into `repository` in one request; its digest."""
    digest = digest_bytes(data, "sha256")
    asyncio.run(registry.uploads.push_whole(repository, digest, _body(data), len(data)))
    return str(digest)


def push_image(registry: Registry, repository: str, tag: str) -> tuple[str, str]:
    """Push a one-layer image under `tag`; (manifest digest, layer digest)."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "nonce": os.urandom(8).hex()}).encode()
    layer = os.urandom(256)
    descriptors = [
        {"mediaType": media_type, "digest": push_blob(registry, repository, data),
         "size": len(data)}
        for media_type, data in ((OCI_CONFIG, config), (OCI_LAYER, layer))
    ]
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": descriptors[0], "layers": descriptors[1:]}).encode()
    asyncio.run(registry.manifests.push(repository, tag, body, OCI_MANIFEST, []))
    return str(digest_bytes(body, "sha256")), descriptors[1]["digest"]
