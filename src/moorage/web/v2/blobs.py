"""`/v2/<name>/blobs/<digest>`: pull (GET, HEAD, Range, redirect to the object store), delete."""

from __future__ import annotations

import logging

from aiohttp import web

from ...oci.digest import parse_digest
from ...registry.blobs import BlobService, BlobStream
from ..ranges import parse_range
from .base import actor_of

log = logging.getLogger(__name__)


class Blobs:
    """Thin handlers over BlobService."""

    def __init__(self, blobs: BlobService, inline_reads: bool = False) -> None:
        self.blobs = blobs
        self.inline_reads = inline_reads

    async def get_blob(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        """The blob's bytes (or a 206 range, or a 307 to the object store); HEAD: headers only."""
        parsed = parse_digest(digest)
        row = await self.blobs.find(name, parsed, request.method == "GET",
                                    request.headers.get("Range") is None)
        if isinstance(row, BlobStream):
            return await _stream(request, row)
        headers = {
            "Docker-Content-Digest": row.digest,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "ETag": f'"{row.digest}"',
            "Cache-Control": "max-age=31536000, immutable",
        }
        byte_range = parse_range(request.headers.get("Range"), row.size)
        if request.method == "GET" and (url := self.blobs.redirect_url(row)) is not None:
            # The object store serves the bytes (and the Range, which the client sends again) but
            # cannot add Docker-Content-Digest, so the 307 carries it. Content-Length stays the
            # 307's own (empty) body: HTTP framing, not the blob's size.
            return web.Response(
                status=307,
                headers={"Location": url, "Docker-Content-Digest": row.digest,
                         "Content-Type": "application/octet-stream",
                         "Content-Length": "0", "Cache-Control": "no-store"},
            )
        status, offset, count = 200, 0, row.size
        if byte_range is not None:
            status, offset, count = 206, byte_range[0], byte_range[1] - byte_range[0] + 1
            headers["Content-Range"] = f"bytes {byte_range[0]}-{byte_range[1]}/{row.size}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = count
        await response.prepare(request)
        if request.method == "GET" and count > 0:
            await self.blobs.send(row, offset, count, request.transport, response.write)
        await response.write_eof()
        return response

    async def delete_blob(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        """202: the blob is no longer linked from `name`."""
        await self.blobs.delete(name, parse_digest(digest), actor_of(request))
        return web.Response(status=202, headers={"Content-Length": "0"})


async def _stream(request: web.Request, blob: BlobStream) -> web.StreamResponse:
    """A blob sent as it arrives; a failure after the first byte cuts the connection (the
    client must not take a short or unverified body for the blob)."""
    headers = {"Docker-Content-Digest": blob.digest, "Content-Type": "application/octet-stream",
               "ETag": f'"{blob.digest}"'}
    response = web.StreamResponse(status=200, headers=headers)
    if blob.size is not None:
        response.content_length = blob.size
    if blob.chunks is None:
        await response.prepare(request)
        await response.write_eof()
        return response
    chunks = aiter(blob.chunks)
    try:
        first = await anext(chunks, None)  # an upstream error before any byte is answered
    except BaseException:
        await _close(blob.chunks)
        raise
    await response.prepare(request)
    try:
        if first is not None:
            await response.write(first)
            async for data in chunks:
                await response.write(data)
    except Exception as exc:  # noqa: BLE001 - the answer is a cut connection, not an error body
        log.warning("cold blob stream failed, cutting the connection",
                    extra={"path": request.path, "reason": str(exc)[:300]})
        if request.transport is not None:
            request.transport.abort()
        return response
    finally:
        await _close(blob.chunks)
    await response.write_eof()
    return response


async def _close(chunks: object) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()
