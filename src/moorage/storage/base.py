"""The BlobStore contract: where blob bytes live. It knows nothing of repositories or tags."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


class UploadWriter(Protocol):
    """Appends to an upload in progress. Blocking: call from a worker thread."""

    def write(self, data: bytes) -> None: ...

    def checkpoint(self) -> str:
        """Make what was written durable and resumable anywhere; return the handle to persist.

        May be called again after more writes (a long chunk checkpoints as it streams): each call
        returns a handle of its own, and an earlier handle still resumes at its own offset.
        """
        ...

    def until_checkpoint(self) -> int:
        """Bytes still to write before checkpoint() may be called (0: now).

        S3 cannot cut a part it has declared the length of, so it says how much of it is left.
        """
        ...

    def commit(self, digest: str) -> str:
        """End the upload with what was written (no checkpoint); return the blob's key. O(1)."""
        ...

    def close(self) -> None:
        """Free resources; without checkpoint() or commit() first, the writes are forgotten."""
        ...


@dataclass(frozen=True)
class StoredObject:
    """One blob object as the store lists it."""

    key: str
    size: int
    modified: float  # seconds since the epoch


class BlobStore(Protocol):
    """Blob bytes, addressed by opaque keys the metadata layer keeps.

    Methods block (disk or network I/O); the service layer runs them off the event loop.
    """

    def create_upload(self, upload_id: str) -> str:
        """Create empty upload storage and return its handle."""
        ...

    def open_upload(self, handle: str, offset: int, expected: int | None = None) -> UploadWriter:
        """A writer that continues the upload at `offset`, discarding anything written past it.

        `expected` is how many bytes the caller will write, when it knows (lets a remote store
        stream them straight through instead of spooling).
        """
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

    def committed_key(self, handle: str, digest: str) -> str:
        """The key `commit_upload(handle, digest)` gives (or gave), known before the commit."""
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

    def blob_size(self, key: str) -> int | None:
        """The size of the bytes stored for `key`, None when there are none."""
        ...

    def list_blobs(self) -> Iterator[StoredObject]:
        """Every blob object in the store (committed or not), in no particular order."""
        ...

    def delete_blob(self, key: str) -> None:
        """Remove a blob's bytes (garbage collection only)."""
        ...

    def presigned_url(self, key: str, expires_seconds: int) -> str | None:
        """A short-lived URL clients can fetch the blob from directly, or None (serve it here)."""
        ...

    def check(self) -> None:
        """Raise unless the store is reachable and usable (readiness probe)."""
        ...
