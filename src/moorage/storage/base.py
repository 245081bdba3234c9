"""The BlobStore contract: where blob bytes live. It knows nothing of repositories or tags."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class UploadWriter(Protocol):
    """Appends to an upload in progress. Blocking: call from a worker thread."""

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class BlobStore(Protocol):
    """Blob bytes, addressed by opaque keys the metadata layer keeps.

    Methods block (disk or network I/O); the service layer runs them off the event loop.
    """

    def create_upload(self, upload_id: str) -> str:
        """Create empty upload storage and return its handle."""
        ...

    def open_upload(self, handle: str, offset: int) -> UploadWriter:
        """A writer that continues the upload at `offset`, discarding anything written past it."""
        ...

    def read_upload(self, handle: str, length: int) -> Iterator[bytes]:
        """The first `length` bytes of an upload, in chunks (to re-hash with another algorithm)."""
        ...

    def commit_upload(self, handle: str, digest: str) -> str:
        """Make the upload the durable content of `digest`; return its storage key. O(1)."""
        ...

    def abort_upload(self, handle: str) -> None:
        """Throw away an upload's bytes."""
        ...

    def blob_path(self, key: str) -> str | None:
        """A local file path for zero-copy serving, or None when the store is remote."""
        ...

    def open_blob(self, key: str, offset: int, length: int) -> Iterator[bytes]:
        """Stream `length` bytes of a blob from `offset`."""
        ...

    def blob_exists(self, key: str) -> bool:
        """True when the bytes for `key` are present."""
        ...

    def delete_blob(self, key: str) -> None:
        """Remove a blob's bytes (garbage collection only)."""
        ...
