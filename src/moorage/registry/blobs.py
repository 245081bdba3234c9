"""Reading, mounting and deleting blobs, always through a repository's links."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..events.types import SYSTEM, Actor, BlobDeleted, BlobMounted, records
from ..metadata.rows import BlobRow
from ..oci.digest import Digest
from ..oci.errors import BlobUnknown
from ..storage.base import BlobStore

if TYPE_CHECKING:
    from ..metadata.uow import Database


@dataclass(frozen=True, slots=True)
class BlobStream:
    """A blob not in storage yet, served as it arrives (a pull-through cache's cold blob):
    its size if known, and its bytes (None for a HEAD). An exception from `chunks` after the
    first byte means the client's connection must be cut."""

    digest: str
    size: int | None
    chunks: AsyncIterator[bytes] | None


class BlobService:
    """Blob operations scoped to one repository at a time."""

    def __init__(
        self,
        database: Database,
        blobs: BlobStore,
        redirect_min_bytes: int | None = None,
        redirect_expires: int = 300,
    ) -> None:
        self.database = database
        self.blobs = blobs
        # None: never redirect. Small blobs are cheaper to proxy than to redirect.
        self.redirect_min_bytes = redirect_min_bytes
        self.redirect_expires = redirect_expires

    def redirect_url(self, row: BlobRow) -> str | None:
        """A short-lived URL to send the client to instead of streaming the bytes, or None."""
        if self.redirect_min_bytes is None or row.size < self.redirect_min_bytes:
            return None
        return self.blobs.presigned_url(row.storage_key, self.redirect_expires)

    def locate(self, repository: str, digest: Digest) -> BlobRow:
        """The blob as served through `repository`; BLOB_UNKNOWN unless the repository holds it."""
        with self.database.read() as uow:
            row = uow.blobs.repository_blob(repository, str(digest))
        if row is None:
            raise BlobUnknown(detail={"digest": str(digest)})
        return row

    async def find(self, repository: str, digest: Digest, with_body: bool = True,
                   whole: bool = True) -> BlobRow | BlobStream:
        """`locate` from the request path (inline on embedded SQLite, else in a thread).
        `with_body`: a GET (not a HEAD); `whole`: no Range (a stream can only be whole)."""
        if self.database.reads_inline:
            return self.locate(repository, digest)
        return await asyncio.to_thread(self.locate, repository, digest)

    async def send(
        self,
        row: BlobRow,
        offset: int,
        count: int,
        transport: asyncio.Transport | None,
        write: Callable[[bytes], Awaitable[None]],
    ) -> None:
        """Send a byte range: zero-copy sendfile from a local file, else chunk by chunk; a
        chunked blob segment by segment (runs of its packs), each sent the same way."""
        segments = getattr(self.blobs, "segments", None)
        pages = segments(row.storage_key, offset, count) if segments is not None else None
        if pages is None:
            await self._send_range(row.storage_key, offset, count, transport, write)
            return
        # The next page of the recipe is read (a thread) while this one is sent: reading it
        # first cost a chunked GET a third of its throughput (benchmarks/chunks.py).
        ahead = asyncio.ensure_future(asyncio.to_thread(next, pages, None))
        try:
            while (page := await ahead) is not None:
                ahead = asyncio.ensure_future(asyncio.to_thread(next, pages, None))
                for key, at, n in page:
                    await self._send_range(key, at, n, transport, write)
        finally:
            # A client gone mid-blob: the read in flight (or its error) goes unobserved.
            ahead.add_done_callback(_quiet)

    async def _send_range(self, key: str, offset: int, count: int,
                          transport: asyncio.Transport | None,
                          write: Callable[[bytes], Awaitable[None]]) -> None:
        path = self.blobs.blob_path(key)
        if path is not None and transport is not None:
            loop = asyncio.get_running_loop()
            with open(path, "rb") as f:  # noqa: ASYNC230 - open() of a local file is instant
                try:
                    await loop.sendfile(transport, f, offset, count)
                    return
                except NotImplementedError:
                    pass
        chunks = self.blobs.open_blob(key, offset, count)
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            await write(chunk)

    def holders(self, digest: Digest) -> list[str]:
        """Repositories that hold a blob (candidates for a mount without `from`)."""
        with self.database.read() as uow:
            return uow.blobs.repositories_with_blob(str(digest))

    async def mount(self, repository: str, digest: Digest, sources: list[str] | None,
                    actor: Actor = SYSTEM) -> bool:
        """Link a blob held by one of `sources` (None: by any repository) into `repository`.

        Returns False when the blob is not available, and the caller opens an upload instead.
        """
        found, source = await asyncio.to_thread(self._lender, str(digest), sources)
        if not found:
            return False
        mounted = records(BlobMounted(actor=actor, repository=repository, digest=str(digest),
                                      source=source))
        # False when the content was garbage-collected since it was looked up.
        return await asyncio.to_thread(self._link, repository, str(digest), mounted)

    def _lender(self, digest: str, sources: list[str] | None) -> tuple[bool, str | None]:
        """(whether the blob can be mounted, the first of `sources` that holds it)."""
        with self.database.read() as uow:
            if sources is None:
                return uow.blobs.find(digest) is not None, None
            source = next((s for s in sources if uow.blobs.repository_blob(s, digest)), None)
            return source is not None, source

    def _link(self, repository: str, digest: str, events: list[dict]) -> bool:
        with self.database.write() as uow:
            linked = uow.blobs.link(repository, digest)
            if linked:
                uow.emit(events)
            return linked

    def _unlink(self, repository: str, digest: str, events: list[dict]) -> bool:
        with self.database.write() as uow:
            removed = uow.blobs.unlink(repository, digest)
            if removed:
                uow.emit(events)
            return removed

    async def delete(self, repository: str, digest: Digest, actor: Actor = SYSTEM) -> None:
        """Remove the blob from `repository`; the bytes stay for others until GC."""
        gone = records(BlobDeleted(actor=actor, repository=repository, digest=str(digest)))
        removed = await asyncio.to_thread(self._unlink, repository, str(digest), gone)
        if not removed:
            raise BlobUnknown(detail={"digest": str(digest)})


def _quiet(future: asyncio.Future[object]) -> None:
    """Retrieve a finished read's error so it is not reported as never retrieved."""
    if not future.cancelled():
        future.exception()
