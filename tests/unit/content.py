"""Content the service-level tests share: blobs pushed through the upload service,
image manifests naming them, and the outbox events a test caused."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from moorage.bootstrap import Registry
from moorage.oci.digest import Digest, parse_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def push_blob(registry: Registry, repository: str, data: bytes) -> str:
    """Push `data` as a blob of `repository` through the upload service; its digest."""
    digest = parse_digest(digest_of(data))
    asyncio.run(registry.uploads.push_whole(repository, digest, _body(data), len(data)))
    return str(digest)


def image(config: bytes, layers: list[bytes]) -> bytes:
    """An OCI image manifest naming `config` and `layers` (pushed or not)."""
    def descriptor(media_type: str, data: bytes) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}

    return json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
    }).encode()


def pushed_image(registry: Registry, repository: str, layer_bytes: int = 64) -> bytes:
    """A manifest whose config and one layer are pushed to `repository` already."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "author": uuid.uuid4().hex}).encode()
    layer = uuid.uuid4().bytes * (layer_bytes // 16)
    push_blob(registry, repository, config)
    push_blob(registry, repository, layer)
    return image(config, [layer])


def push_layer_image(registry: Registry, repository: str, layer: bytes) -> str:
    """Push `layer` and a config as an image tagged v1 of `repository`; the manifest digest."""
    config = repository.encode()
    push_blob(registry, repository, config)
    push_blob(registry, repository, layer)
    content = image(config, [layer])
    push(registry, repository, "v1", content)
    return digest_of(content)


def push(registry: Registry, repository: str, reference: str | Digest, content: bytes,
         service: Any = None) -> Any:
    """Push a manifest through the manifest service (or `service`)."""
    return asyncio.run((service or registry.manifests).push(
        repository, reference, content, OCI_MANIFEST, []))


def events_after(registry: Registry, last_id: int) -> list[dict[str, Any]]:
    """The outbox events appended after `last_id`."""
    return registry.outbox.since(last_id, 1000)


def push_image(registry: Registry, repository: str, tag: str) -> tuple[str, str]:
    """Push a one-layer image under `tag`; (manifest digest, layer digest)."""
    content = pushed_image(registry, repository, layer_bytes=256)
    push(registry, repository, tag, content)
    return digest_of(content), json.loads(content)["layers"][0]["digest"]


def run_job(registry: Registry, job_id: int, timeout: float = 60.0) -> Any:
    """Run the registry's job runner until job `job_id` is done, failed or being retried."""
    async def run() -> Any:
        runner = registry.job_runner(concurrency=1)
        runner.start()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                job = registry.jobs.get(job_id)
                if job.state in ("done", "failed") or job.attempts > 1:
                    return job
                await asyncio.sleep(0.05)
            raise AssertionError(f"job {job_id} did not finish in {timeout} s")
        finally:
            await runner.stop(5)

    return asyncio.run(run())
