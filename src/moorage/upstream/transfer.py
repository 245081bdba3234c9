"""Moving blob bytes: a chunked push that resumes from the offset the upstream acknowledged, and
where a (possibly ranged) pull answer starts."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

from .types import UpstreamError

if TYPE_CHECKING:
    from .client import UpstreamClient


class ChunkedUpload:
    """Where a chunked upload stands (its URL and the bytes the upstream acknowledged), and the
    requests that move it on."""

    def __init__(self, client: UpstreamClient, scopes: tuple[str, ...], location: URL) -> None:
        self.client = client
        self.scopes = scopes
        self.location = location
        self.offset = 0

    async def send_chunk(self, piece: bytes) -> None:
        """PATCH `piece`; after a break, send only what the upload did not acknowledge."""
        start = self.offset
        failures = 0
        while self.offset < start + len(piece):
            rest = piece[self.offset - start:]
            headers = {"Content-Type": "application/octet-stream",
                       "Content-Range": f"{self.offset}-{self.offset + len(rest) - 1}"}
            try:
                resp = await self.client._request("PATCH", self.location, self.scopes,
                                                  headers=headers, data=rest, ok=(202,))
                resp.release()
                self._moved(resp)
                self.offset = acknowledged(resp, self.offset + len(rest))
            except UpstreamError as exc:
                failures += 1
                await self._after_break(exc, failures, start)

    async def stream(self, source: Callable[[int], AsyncIterable[bytes]], size: int,
                     chunk_size: int, on_progress: Callable[[str, int], None] | None) -> None:
        """PATCH bytes `offset..size` in pieces of `chunk_size`, each streamed from
        `source(offset)` as it is sent (never held whole); after a break, go on from the offset
        the upload acknowledged (a Moorage keeps what reached it of a broken PATCH)."""
        failures = 0
        while self.offset < size:
            start = self.offset
            length = min(chunk_size, size - start)
            headers = {"Content-Type": "application/octet-stream",
                       "Content-Length": str(length),
                       "Content-Range": f"{start}-{start + length - 1}"}
            try:
                resp = await self.client._request(
                    "PATCH", self.location, self.scopes, headers=headers,
                    data=functools.partial(_piece, source, start, length), ok=(202,))
                resp.release()
                self._moved(resp)
                self.offset = acknowledged(resp, start + length)
                failures = 0
            except UpstreamError as exc:
                failures += 1
                await self._after_break(exc, failures, start)
                if self.offset > start:
                    failures = 0  # it moved on: only breaks in a row without progress count
            if on_progress is not None:
                on_progress(str(self.location), self.offset)

    async def _after_break(self, exc: UpstreamError, failures: int, floor: int) -> None:
        """After the `failures`-th broken PATCH in a row: give up past `retries` or on a status
        no retry mends, else wait a backoff and ask the upload where it stands."""
        if failures > self.client.retries or exc.status not in (0, 416, 500, 502, 503, 504):
            raise exc
        await asyncio.sleep(min(0.1 * 2 ** failures, 5.0))
        await self.recover(floor)

    async def recover(self, floor: int) -> None:
        """Ask the upload where it stands; what it acknowledged is not sent again."""
        resp = await self.client._request("GET", self.location, self.scopes, ok=(204, 200))
        resp.release()
        self._moved(resp)
        offset = acknowledged(resp, 0, empty=0)
        if offset < floor:
            raise UpstreamError(resp.status, "BLOB_UPLOAD_INVALID",
                                f"the upload lost acknowledged bytes ({offset} < {floor})")
        self.offset = offset

    async def finish(self, repo: str, digest: str, tail: bytes) -> None:
        """PUT the last bytes with the digest; a lost answer is settled by asking for the blob."""
        start = self.offset
        failures = 0
        while True:
            rest = tail[self.offset - start:]
            headers = {"Content-Type": "application/octet-stream"}
            try:
                url = self.location.update_query(digest=digest)
                resp = await self.client._request("PUT", url, self.scopes, headers=headers,
                                                  data=rest, ok=(201,))
                resp.release()
                return
            except UpstreamError as exc:
                failures += 1
                if failures > self.client.retries or exc.status not in (0, 500, 502, 503, 504):
                    raise
                await asyncio.sleep(min(0.1 * 2 ** failures, 5.0))
                if await self.client.head_blob(repo, digest) is not None:
                    return  # the PUT landed; only its answer was lost
                await self.recover(start)

    def _moved(self, resp: aiohttp.ClientResponse) -> None:
        self.location = self.client._resolve(resp.headers.get("Location") or str(self.location))


async def _piece(source: Callable[[int], AsyncIterable[bytes]], start: int,
                 length: int) -> AsyncIterator[bytes]:
    """Bytes `start..start + length` of the blob `source` reads (ValueError if it has fewer)."""
    left = length
    chunks = aiter(source(start))
    try:
        while left > 0:
            data = await anext(chunks, None)
            if data is None:
                raise ValueError(f"the blob's source ended {left} bytes short")
            if len(data) > left:
                data = data[:left]
            left -= len(data)
            yield data
    finally:
        if hasattr(chunks, "aclose"):
            await chunks.aclose()


def location_of(resp: aiohttp.ClientResponse) -> str:
    """The upload URL an answer names; BLOB_UPLOAD_INVALID when it names none."""
    location = resp.headers.get("Location")
    if not location:
        raise UpstreamError(resp.status, "BLOB_UPLOAD_INVALID", "the upload has no Location")
    return location


def acknowledged(resp: aiohttp.ClientResponse, default: int, empty: int = 1) -> int:
    """The upload offset `Range: 0-N` acknowledges (N + 1); `default` when it says nothing.
    `0-0` is said of an empty upload too: it counts as `empty` bytes (1 after we sent some,
    0 when asking where an upload stands: sending a byte again is harmless, skipping one not)."""
    value = resp.headers.get("Range")
    if not value:
        return default
    match = re.fullmatch(r"(?:bytes=)?0-(\d+)", value.strip())
    if not match:
        return 0
    end = int(match.group(1))
    return empty if end == 0 else end + 1


def placement(
    resp: aiohttp.ClientResponse, position: int, total: int | None
) -> tuple[int, int | None]:
    """How many leading bytes of this answer we already have, and the blob's size if known."""
    if resp.status == 206:
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) > position:
            raise UpstreamError(206, "RANGE_INVALID", "the upstream sent a range we did not ask")
        size = None if match.group(3) == "*" else int(match.group(3))
        return position - int(match.group(1)), size if size is not None else total
    length = resp.content_length
    return position, length if length is not None else total  # a 200 starts at byte 0
