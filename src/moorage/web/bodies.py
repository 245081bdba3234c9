"""Reading small request bodies (manifests, JSON) whole, with a hard size limit."""

from __future__ import annotations

from aiohttp import web

from ..oci.errors import RegistryError


async def read_bounded(
    request: web.Request, limit: int, too_large: type[RegistryError] = RegistryError
) -> bytes:
    """The whole body if it is at most `limit` bytes; `too_large` is raised before reading more."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(f"request body exceeds {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for part in request.content.iter_any():
        size += len(part)
        if size > limit:
            raise too_large(f"request body exceeds {limit} bytes")
        parts.append(part)
    return b"".join(parts)
