"""The upstream-registry seam: what the pull-through cache and replication ask of another OCI
registry (`Upstream`), and the aiohttp client that does it (`UpstreamClient`).

Imports only `oci/`, the standard library and aiohttp: no metadata, web, registry or CLI.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from moorage.oci.digest import Hasher

from .client import UpstreamClient
from .types import (
    Basic,
    BlobInfo,
    Credentials,
    Manifest,
    ManifestInfo,
    Token,
    UpstreamDigestMismatch,
    UpstreamError,
)


@runtime_checkable
class Upstream(Protocol):
    """Another OCI registry, as the cache and replication use it; every failure is an
    UpstreamError, every digest received is verified."""

    async def ping(self) -> None:
        """Raise unless the registry answers /v2/ with our credentials."""
        ...

    async def head_manifest(
        self, repo: str, reference: str, accept: Iterable[str]
    ) -> ManifestInfo | None:
        """A manifest's digest, media type and size; None when absent."""
        ...

    async def get_manifest(self, repo: str, reference: str, accept: Iterable[str]) -> Manifest:
        """A manifest's verified digest, media type and exact bytes."""
        ...

    async def put_manifest(
        self, repo: str, reference: str, media_type: str, content: bytes
    ) -> str:
        """Push a manifest; its digest."""
        ...

    async def delete_manifest(self, repo: str, reference: str) -> bool:
        """Delete a tag (or a manifest by digest); False when it had none."""
        ...

    async def head_blob(self, repo: str, digest: str) -> BlobInfo | None:
        """A blob's size; None when the repository does not have it."""
        ...

    def get_blob(
        self, repo: str, digest: str, offset: int = 0, *, hasher: Hasher | None = None,
        on_size: Callable[[int | None], None] | None = None,
    ) -> AsyncIterator[bytes]:
        """The blob's bytes from `offset`, resumed across broken connections, digest checked."""
        ...

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Mount a blob from another repository of the upstream; False when it would not."""
        ...

    async def push_blob(
        self, repo: str, digest: str, chunks: AsyncIterable[bytes], size: int
    ) -> None:
        """Upload a blob chunked, resuming from the offset the upstream acknowledged."""
        ...

    async def tags(self, repo: str, page_size: int | None = None) -> list[str]:
        """Every tag of a repository (all pages)."""
        ...

    async def referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[dict[str, Any]]:
        """The descriptors of the referrers of `digest` (all pages)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


if TYPE_CHECKING:
    def _satisfies(client: UpstreamClient) -> Upstream:
        return client  # mypy checks that UpstreamClient is an Upstream


__all__ = [
    "Basic", "BlobInfo", "Credentials", "Manifest", "ManifestInfo", "Token", "Upstream",
    "UpstreamClient", "UpstreamDigestMismatch", "UpstreamError",
]
