"""Reading, mounting and deleting blobs, always through a repository's links."""

from __future__ import annotations

import asyncio

from ..metadata.store import BlobRow, MetadataStore
from ..oci.digest import Digest
from ..oci.errors import BlobUnknown
from ..storage.base import BlobStore


class BlobService:
    """Blob operations scoped to one repository at a time."""

    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        redirect_min_bytes: int | None = None,
        redirect_expires: int = 300,
    ) -> None:
        self.store = store
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
        row = self.store.repository_blob(repository, str(digest))
        if row is None:
            raise BlobUnknown(detail={"digest": str(digest)})
        return row

    def local_path(self, row: BlobRow) -> str | None:
        """A file path for zero-copy serving, when the store is local."""
        return self.blobs.blob_path(row.storage_key)

    def read(self, row: BlobRow, offset: int, length: int):  # type: ignore[no-untyped-def]
        """Stream a byte range of a blob (for stores without local files)."""
        return self.blobs.open_blob(row.storage_key, offset, length)

    async def mount(self, repository: str, digest: Digest, source: str | None) -> bool:
        """Link a blob from `source` (or, without a source, from wherever it is stored).

        Returns False when the blob is not available, and the caller opens an upload instead.
        """
        if source is not None:
            found = self.store.repository_blob(source, str(digest))
        else:
            found = self.store.find_blob(str(digest))
        if found is None:
            return False
        await asyncio.to_thread(self.store.link_blob, repository, str(digest))
        return True

    async def delete(self, repository: str, digest: Digest) -> None:
        """Remove the blob from `repository`; the bytes stay for others until GC."""
        removed = await asyncio.to_thread(self.store.unlink_blob, repository, str(digest))
        if not removed:
            raise BlobUnknown(detail={"digest": str(digest)})
