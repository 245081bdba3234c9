"""A BlobStore that also serves chunked blobs: their key names a recipe, read chunk by chunk.

Every reader of blob bytes (GET, the scanners, replication, the model indexer) goes through the
BlobStore contract, so wrapping the store keeps chunking transparent to all of them. A chunked
blob has no local path and no presigned URL: it is streamed from its packs here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..metadata.queries.chunks import CHUNKED_PREFIX, Piece
from ..storage.base import BlobStore, StoredObject, UploadWriter

if TYPE_CHECKING:
    from ..metadata.uow import Database

# Adjacent pieces of one pack are read (or sent) as one segment, up to this many bytes.
MAX_READ = 64 << 20
# Recipe rows read per query: ~256 MiB of 64 KiB chunks (a few hundred KiB of rows in memory).
PAGE = 4096
# The first query of a range reads fewer rows, so its first bytes go out sooner.
FIRST_PAGE = 256


def merged(pieces: list[Piece], start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """(pack key, offset, length) reads covering [start, end) of the blob, merging pieces that
    follow each other in one pack."""
    run: list[int] | None = None  # [pack offset, length]
    run_key = ""
    for p in pieces:
        lo, hi = max(start, p.offset), min(end, p.offset + p.length)
        if lo >= hi:
            continue
        at = p.pack_offset + (lo - p.offset)
        if run is not None and run_key == p.pack_key and run[0] + run[1] == at \
                and run[1] < MAX_READ:
            run[1] += hi - lo
            continue
        if run is not None:
            yield run_key, run[0], run[1]
        run, run_key = [at, hi - lo], p.pack_key
    if run is not None:
        yield run_key, run[0], run[1]


class ChunkedBlobStore:
    """`inner` for whole blobs; recipes (from the database) for keys of chunked blobs."""

    def __init__(self, inner: BlobStore, database: Database) -> None:
        self.inner = inner
        self.database = database

    # -- chunked blobs ------------------------------------------------------------------------

    def open_blob(self, key: str, offset: int, length: int) -> Iterator[bytes]:
        """Stream `length` bytes from `offset` (a chunked blob: from its packs, in order)."""
        if not key.startswith(CHUNKED_PREFIX):
            return self.inner.open_blob(key, offset, length)
        return self._stream(key[len(CHUNKED_PREFIX):], offset, offset + length)

    def _stream(self, digest: str, start: int, end: int) -> Iterator[bytes]:
        for page in self._pages(digest, start, end):
            for key, at, n in page:
                yield from self.inner.open_blob(key, at, n)

    def segments(self, key: str, offset: int, length: int
                 ) -> Iterator[list[tuple[str, int, int]]] | None:
        """Pages of (pack key, offset, length) reads that make up a range of a chunked blob
        (each read servable like a whole blob, e.g. with sendfile; each next() one database
        query); None for a whole blob. Blocking."""
        if not key.startswith(CHUNKED_PREFIX):
            return None
        return self._pages(key[len(CHUNKED_PREFIX):], offset, offset + length)

    def _pages(self, digest: str, start: int, end: int) -> Iterator[list[tuple[str, int, int]]]:
        pos, limit = start, FIRST_PAGE
        while pos < end:
            # One short read per page: no connection is held while the bytes stream.
            with self.database.read() as uow:
                pieces = uow.chunks.extents(digest, pos, PAGE) or \
                    uow.chunks.pieces(digest, pos, limit)
            if not pieces:
                raise FileNotFoundError(f"no recipe covers {digest} at {pos}")
            page_end = min(end, pieces[-1].offset + pieces[-1].length)
            if page_end <= pos:
                raise ValueError(f"read past the end of {digest} at {pos}")
            yield list(merged(pieces, pos, page_end))
            pos, limit = page_end, PAGE

    def blob_path(self, key: str) -> str | None:
        """A local path for a whole blob; None for a chunked one (it is streamed)."""
        return None if key.startswith(CHUNKED_PREFIX) else self.inner.blob_path(key)

    def presigned_url(self, key: str, expires_seconds: int) -> str | None:
        """No redirect for a chunked blob (no single object holds it)."""
        if key.startswith(CHUNKED_PREFIX):
            return None
        return self.inner.presigned_url(key, expires_seconds)

    def blob_exists(self, key: str) -> bool:
        """A chunked blob exists while its recipe does."""
        if not key.startswith(CHUNKED_PREFIX):
            return self.inner.blob_exists(key)
        with self.database.read() as uow:
            return uow.chunks.has_recipe(key[len(CHUNKED_PREFIX):])

    def blob_size(self, key: str) -> int | None:
        """A chunked blob's size is what its recipe assembles (None without a recipe)."""
        if not key.startswith(CHUNKED_PREFIX):
            return self.inner.blob_size(key)
        with self.database.read() as uow:
            return uow.chunks.recipe_size(key[len(CHUNKED_PREFIX):])

    def list_blobs(self) -> Iterator[StoredObject]:
        """The stored objects: whole blobs and packs (chunked blobs are no object of their
        own)."""
        return self.inner.list_blobs()

    def delete_blob(self, key: str) -> None:
        """Whole blobs and packs only: a recipe's chunks are collected by their own rows."""
        if not key.startswith(CHUNKED_PREFIX):
            self.inner.delete_blob(key)

    def __getattr__(self, name: str) -> object:
        # A store's own extras (the filesystem's root, S3's multipart listing) stay reachable.
        return getattr(self.inner, name)

    # -- the rest of the contract, unchanged ---------------------------------------------------

    def create_upload(self, upload_id: str) -> str:
        """As the inner store."""
        return self.inner.create_upload(upload_id)

    def open_upload(self, handle: str, offset: int, expected: int | None = None) -> UploadWriter:
        """As the inner store."""
        return self.inner.open_upload(handle, offset, expected)

    def read_upload(self, handle: str, length: int) -> Iterator[bytes]:
        """As the inner store."""
        return self.inner.read_upload(handle, length)

    def commit_upload(self, handle: str, digest: str) -> str:
        """As the inner store."""
        return self.inner.commit_upload(handle, digest)

    def abort_upload(self, handle: str) -> None:
        """As the inner store."""
        self.inner.abort_upload(handle)

    def committed_key(self, handle: str, digest: str) -> str:
        """As the inner store."""
        return self.inner.committed_key(handle, digest)

    def check(self) -> None:
        """As the inner store."""
        self.inner.check()
