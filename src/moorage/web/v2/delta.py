"""`/v2/<name>/moorage/…`: the delta push and pull extension (`_moorage.chunks`, chunks/v1).

A client chunks its files as the registry does (FastCDC + BLAKE3), asks which chunks are
missing, sends only those, and commits each blob by its recipe; a pull reads a blob's recipe and
fetches only the chunks it lacks. Chunk batches travel as `application/vnd.moorage.chunks.v1`:
one JSON line `{"lengths": [...]}` then the chunks' bytes back to back.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...oci.digest import parse_digest
from ...oci.errors import BlobUnknown, BlobUploadInvalid, SizeInvalid
from ..bodies import read_bounded
from .base import blob_created

if TYPE_CHECKING:
    from ...chunks.service import ChunkService

BATCH_TYPE = "application/vnd.moorage.chunks.v1"
EXTENSION = "_moorage.chunks"
EXTENSION_HEADER = {"Moorage-Extensions": "chunks/v1"}
DOC_URL = "https://github.com/moorage/moorage/blob/main/README.md#delta-push-and-pull"
MAX_IDS = 100_000
MAX_IDS_BODY = 8 << 20
MAX_BATCH = 64 << 20  # chunk bytes per request, both ways
MAX_RECIPE_BODY = 64 << 20  # ~800 000 chunks: a 50 GiB blob at 64 KiB chunks
MAX_CHUNK = 16 << 20
_ID = re.compile(r"[0-9a-f]{64}")
_READ_GROUP = 4 << 20  # chunk bytes read from the store per thread hop of a fetch


class MissingChunks(BlobUnknown):
    """A recipe or fetch names chunks the registry does not hold (400, they are listed)."""

    status = 400
    default_message = "chunks unknown to registry"


class Delta:
    """Thin handlers over ChunkService (built on first use)."""

    def __init__(self, chunks: Callable[[], ChunkService]) -> None:
        self.chunks = chunks

    async def discover(self, request: web.Request) -> web.StreamResponse:
        """The OCI extensions discovery document: this registry speaks `_moorage.chunks`."""
        return web.json_response({"extensions": [{
            "name": EXTENSION, "url": DOC_URL,
            "description": "delta push and pull by content-defined chunks (FastCDC, BLAKE3)",
            "endpoints": [f"{EXTENSION}.{e}" for e in ("missing", "store", "commit", "recipe",
                                                     "fetch")],
            # clients cut as the registry does, so their chunks and its own ones coincide
            "parameters": {"chunker": "fastcdc-blake3", "avgChunkSize": self.chunks().avg_size},
        }]}, headers=EXTENSION_HEADER)

    async def missing(self, request: web.Request, name: str) -> web.StreamResponse:
        """The chunk ids of the body's list that the registry lacks."""
        ids = await _ids(request)
        missing = await asyncio.to_thread(self.chunks().missing, ids)
        return web.json_response({"missing": missing})

    async def store(self, request: web.Request, name: str) -> web.StreamResponse:
        """Store a batch of chunks, streamed into one pack; their ids as the registry computed
        them, in the order sent."""
        lengths = await _batch_header(request)
        loop = asyncio.get_running_loop()

        def datas() -> Iterator[bytes]:
            for n in lengths:
                yield _run(loop, _read_exactly(request, n))
            if _run(loop, request.content.read(1)):
                raise BlobUploadInvalid("the body holds more bytes than its lengths say")

        from ...chunks.service import ChunkGone

        try:
            ids = await asyncio.to_thread(self.chunks().store_chunks, datas())
        except ChunkGone:
            # Its pack outlived the upload TTL and the GC took it: nothing was recorded.
            raise BlobUploadInvalid("the batch took longer than the upload TTL; send it again"
                                    ) from None
        return web.json_response({"ids": ids}, status=201)

    async def commit(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        """Commit blob `digest` in `name` from held chunks (201 as a blob upload's end)."""
        from ...chunks.service import ChunkGone, RecipeEntry

        parsed = parse_digest(digest)
        body = _json(await read_bounded(request, MAX_RECIPE_BODY, SizeInvalid))
        entries = body.get("chunks") if isinstance(body, dict) else None
        if not isinstance(entries, list) or not all(_entry(e) for e in entries):
            raise BlobUploadInvalid('a recipe is {"chunks": [[id, length], ...]}')
        recipe = [RecipeEntry(e[0], e[1]) for e in entries]
        service = self.chunks()
        lacking = await asyncio.to_thread(service.missing, [e.chunk_id for e in recipe])
        if lacking:
            raise MissingChunks(detail={"missing": lacking[:100], "count": len(lacking)})
        try:
            await asyncio.to_thread(service.commit_recipe, name, str(parsed), recipe)
        except ChunkGone as exc:
            raise MissingChunks(detail={"missing": [str(exc)], "count": 1}) from None
        return blob_created(name, parsed)

    async def recipe(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        """The recipe (chunk ids and lengths) of a blob `name` holds; 404 without one."""
        parsed = parse_digest(digest)
        found = await asyncio.to_thread(self.chunks().recipe, name, str(parsed))
        if found is None:
            raise BlobUnknown("no recipe for this blob", detail={"digest": str(parsed)})
        return web.json_response({"digest": str(parsed), "size": sum(n for _, n in found),
                                  "chunks": [[cid, n] for cid, n in found]})

    async def fetch(self, request: web.Request, name: str) -> web.StreamResponse:
        """The bytes of the listed chunks as one batch body (≤ 64 MiB), streamed."""
        from ...chunks.service import ChunkGone

        ids = await _ids(request)
        service = self.chunks()
        lengths = await asyncio.to_thread(service.chunk_lengths, ids, name)
        lacking = [i for i in ids if i not in lengths]
        if lacking:
            raise MissingChunks(detail={"missing": lacking[:100], "count": len(lacking)})
        total = sum(lengths[i] for i in ids)
        if total > MAX_BATCH:
            raise SizeInvalid(f"the chunks hold {total} bytes; ask for at most {MAX_BATCH}")
        header = json.dumps({"lengths": [lengths[i] for i in ids]}).encode() + b"\n"
        response = web.StreamResponse(headers={"Content-Type": BATCH_TYPE})
        response.content_length = len(header) + total
        await response.prepare(request)
        await response.write(header)
        try:
            for group in _groups(ids, lengths):
                for data in await asyncio.to_thread(service.read_chunks, group):
                    await response.write(data)
        except ChunkGone:
            if request.transport is not None:
                request.transport.abort()  # collected meanwhile: a short body, never a wrong one
            return response
        await response.write_eof()
        return response


def _run(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    """Run a coroutine on the server's loop from the worker thread and wait for it."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


async def _read_exactly(request: web.Request, n: int) -> bytes:
    try:
        return await request.content.readexactly(n)
    except asyncio.IncompleteReadError:
        raise BlobUploadInvalid("the body ended before its lengths say") from None


async def _batch_header(request: web.Request) -> list[int]:
    """The lengths of a chunk batch, checked against the limits and the declared length."""
    if request.content_type != BATCH_TYPE:
        raise BlobUploadInvalid(f"a chunk batch is {BATCH_TYPE}")
    if request.content_length is not None and request.content_length > MAX_BATCH + (1 << 20):
        raise SizeInvalid(f"a chunk batch holds at most {MAX_BATCH} bytes")
    try:
        line = await request.content.readuntil(b"\n")
    except (ValueError, asyncio.IncompleteReadError):
        raise BlobUploadInvalid("a chunk batch starts with one JSON line of lengths") from None
    head = _json(line)
    lengths = head.get("lengths") if isinstance(head, dict) else None
    if not isinstance(lengths, list) or not all(
            type(n) is int and 0 < n <= MAX_CHUNK for n in lengths):
        raise BlobUploadInvalid(f'lengths are {{"lengths": [n, ...]}}, each 1..{MAX_CHUNK}')
    total = sum(lengths)
    if total > MAX_BATCH:
        raise SizeInvalid(f"a chunk batch holds at most {MAX_BATCH} bytes, not {total}")
    if request.content_length is not None and request.content_length != len(line) + total:
        raise BlobUploadInvalid("the lengths do not add up to the body's length")
    return lengths


async def _ids(request: web.Request) -> list[str]:
    """A bounded JSON list of chunk ids (BLAKE3 hex)."""
    ids = _json(await read_bounded(request, MAX_IDS_BODY, SizeInvalid))
    if not isinstance(ids, list) or not all(isinstance(i, str) and _ID.fullmatch(i)
                                            for i in ids):
        raise BlobUploadInvalid("the body is a JSON list of chunk ids (64 hex digits)")
    if len(ids) > MAX_IDS:
        raise SizeInvalid(f"at most {MAX_IDS} chunk ids a request, not {len(ids)}")
    return ids


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BlobUploadInvalid("the body is not JSON") from None


def _entry(e: Any) -> bool:
    return (isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)
            and _ID.fullmatch(e[0]) is not None and type(e[1]) is int and 0 < e[1] <= MAX_CHUNK)


def _groups(ids: list[str], lengths: dict[str, int]) -> Iterator[list[str]]:
    group: list[str] = []
    size = 0
    for cid in ids:
        group.append(cid)
        size += lengths[cid]
        if size >= _READ_GROUP:
            yield group
            group, size = [], 0
    if group:
        yield group
