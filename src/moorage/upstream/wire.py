"""What every upstream request shares: the transport errors, bounded body reads and the spec
error an answer carries."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from .types import UpstreamError

ERROR_BODY_LIMIT = 64 * 1024
READ_CHUNK = 256 * 1024
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)


async def raise_for(resp: aiohttp.ClientResponse) -> None:
    """Raise the spec error in `resp`'s body (at most 64 KiB of it is read)."""
    try:
        body = await resp.content.read(ERROR_BODY_LIMIT)
    except TRANSPORT_ERRORS:
        body = b""
    finally:
        resp.release()
    code, message = f"HTTP_{resp.status}", resp.reason or ""
    try:
        first = json.loads(body)["errors"][0]
        code = str(first.get("code") or code)[:100]
        message = str(first.get("message") or message)[:1000]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        pass
    retry_after = None
    try:
        retry_after = float(resp.headers.get("Retry-After", ""))
    except ValueError:
        pass
    raise UpstreamError(resp.status, code, message, retry_after)


async def read_limited(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole body, refusing one larger than `limit`."""
    if resp.content_length is not None and resp.content_length > limit:
        raise UpstreamError(resp.status, "SIZE_INVALID", f"{what} larger than {limit} bytes")
    body = bytearray()
    async for data in resp.content.iter_chunked(READ_CHUNK):
        body += data
        if len(body) > limit:
            raise UpstreamError(resp.status, "SIZE_INVALID", f"{what} larger than {limit} bytes")
    return bytes(body)
