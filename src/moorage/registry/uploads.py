"""Blob upload sessions: streamed, hashed as they arrive, resumable across processes."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..metadata.store import MetadataStore, UploadBusy, UploadRow
from ..oci.digest import (
    DEFAULT_ALGORITHM,
    HASH_STATE_VERSION,
    Digest,
    Hasher,
    check_algorithm,
    new_hasher,
    restore_hasher,
)
from ..oci.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    RangeNotSatisfiable,
    SizeInvalid,
)
from ..storage.base import BlobStore, UploadWriter

if TYPE_CHECKING:
    from .lifecycle import LifecycleService

log = logging.getLogger(__name__)

# Bytes gathered before handing them to a worker thread to hash and write. Big enough that the
# per-call overhead vanishes, small enough that memory per upload stays a few MiB.
PUMP_BUFFER = 4 << 20
LEASE_RENEW_EVERY = 10.0


@dataclass(frozen=True, slots=True)
class UploadStatus:
    """Where an upload stands: its id and how many bytes are acknowledged."""

    id: str
    offset: int


@dataclass(frozen=True, slots=True)
class ChunkRange:
    """An inclusive byte range from a `Content-Range` header on PATCH/PUT."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class UploadService:
    """Start, append to, finish and cancel blob uploads."""

    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        lease_seconds: float,
        lifecycle: LifecycleService | None = None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.lease_seconds = lease_seconds
        self.lifecycle = lifecycle

    async def start(self, repository: str, algorithm: str = DEFAULT_ALGORITHM) -> UploadStatus:
        """Open a new upload session in `repository`."""
        check_algorithm(algorithm)
        upload_id = str(uuid.uuid4())
        handle = await asyncio.to_thread(self.blobs.create_upload, upload_id)
        state = new_hasher(algorithm).serialize()
        await asyncio.to_thread(
            self.store.create_upload,
            upload_id,
            repository,
            algorithm,
            state,
            HASH_STATE_VERSION,
            handle,
        )
        return UploadStatus(upload_id, 0)

    async def status(self, repository: str, upload_id: str) -> UploadStatus:
        """The acknowledged offset of an upload."""
        row = self.store.get_upload(repository, upload_id)
        if row is None:
            raise BlobUploadUnknown()
        return UploadStatus(row.id, row.offset)

    async def append(
        self,
        repository: str,
        upload_id: str,
        body: AsyncIterator[bytes],
        chunk: ChunkRange | None,
        content_length: int | None,
    ) -> UploadStatus:
        """Append a chunk (or a streamed body when `chunk` is None) and persist the new state."""
        async with self._lease(repository, upload_id) as (row, token):
            if self.lifecycle is not None:
                await asyncio.to_thread(self._check_quota, repository, row, chunk, content_length)
            offset, hasher, writer = await self._write(row, token, body, chunk, content_length)
            try:
                handle = await asyncio.to_thread(writer.checkpoint)
            finally:
                await asyncio.to_thread(writer.close)
            await self._save(row, token, offset, hasher, handle)
            return UploadStatus(row.id, offset)

    async def finish(
        self,
        repository: str,
        upload_id: str,
        digest: Digest,
        body: AsyncIterator[bytes],
        chunk: ChunkRange | None,
        content_length: int | None,
    ) -> Digest:
        """Take an optional last chunk, verify the whole blob against `digest`, and commit it."""
        async with self._lease(repository, upload_id) as (row, token):
            offset, hasher = row.offset, restore_hasher(row.algorithm, row.hash_state)
            if self.lifecycle is not None:
                await asyncio.to_thread(
                    self._check_quota, repository, row, chunk, content_length, digest
                )
            handle = row.storage_handle
            writer: UploadWriter | None = None
            try:
                if chunk is not None or content_length != 0:
                    offset, hasher, writer = await self._write(
                        row, token, body, chunk, content_length
                    )
                if digest.algorithm != row.algorithm and writer is not None:
                    # The stored bytes get hashed again: make them all stored first.
                    handle = await asyncio.to_thread(writer.checkpoint)
                    await asyncio.to_thread(writer.close)
                    writer = None
                computed = await self._final_digest(row, handle, offset, hasher, digest.algorithm)
                if computed != digest.hex:
                    if writer is not None:
                        await asyncio.to_thread(writer.close)
                        writer = None
                    await self._discard(row, handle)
                    raise DigestInvalid(
                        f"content digest is {digest.algorithm}:{computed}, not {digest}",
                        detail={"digest": str(digest)},
                    )
                recorded = await self._record_existing(repository, row, digest, offset)
                if recorded is not None:
                    # Already stored: drop these bytes instead of finishing a second copy.
                    if writer is not None:
                        await asyncio.to_thread(writer.close)
                        writer = None
                    await asyncio.to_thread(self.blobs.abort_upload, handle)
                elif writer is not None:
                    key = await asyncio.to_thread(writer.commit, str(digest))
                else:
                    key = await asyncio.to_thread(self.blobs.commit_upload, handle, str(digest))
            finally:
                if writer is not None:
                    await asyncio.to_thread(writer.close)
            if recorded is None:
                try:
                    recorded = await self._record(repository, row, digest, offset, key, False)
                except BlobUploadUnknown:
                    await asyncio.to_thread(self.blobs.delete_blob, key)
                    raise
                if recorded != key:
                    # Identical content committed by another request first: keep one copy.
                    await asyncio.to_thread(self.blobs.delete_blob, key)
            log.info(
                "blob committed",
                extra={"repository": repository, "digest": str(digest), "size": offset},
            )
            return digest

    async def _record_existing(
        self, repository: str, row: UploadRow, digest: Digest, size: int
    ) -> str | None:
        """Record the upload as content already stored, if it is; None: commit its own bytes."""
        existing = await asyncio.to_thread(self.store.find_blob, str(digest))
        if existing is None or not await asyncio.to_thread(
            self.blobs.blob_exists, existing.storage_key
        ):
            return None
        return await self._record(repository, row, digest, size, existing.storage_key, True)

    async def _record(
        self, repository: str, row: UploadRow, digest: Digest, size: int, key: str, reused: bool
    ) -> str | None:
        """Record committed bytes; the recorded key, or None when `reused` content was
        garbage-collected meanwhile (the caller then commits the upload's own bytes)."""
        if self.lifecycle is None:
            return await asyncio.to_thread(
                self.store.commit_blob, repository, row.id, str(digest), size, key
            )
        return await asyncio.to_thread(
            self.lifecycle.commit_blob, repository, row.id, str(digest), size, key, reused
        )

    def _check_quota(self, repository: str, row: UploadRow, chunk: ChunkRange | None,
                     content_length: int | None, digest: Digest | None = None) -> None:
        """Refuse a chunk before storing it when its declared size would exceed the quota."""
        declared = chunk.length if chunk is not None else content_length
        if self.lifecycle is not None and declared:
            self.lifecycle.check_upload_quota(
                repository, row.offset + declared, str(digest) if digest else None
            )

    async def cancel(self, repository: str, upload_id: str) -> None:
        """Abandon an upload and free its storage."""
        row = self.store.get_upload(repository, upload_id)
        if row is None:
            raise BlobUploadUnknown()
        await self._discard(row, row.storage_handle)

    async def push_whole(
        self, repository: str, digest: Digest, body: AsyncIterator[bytes], length: int | None
    ) -> Digest:
        """Single-request push (POST with ?digest=): a session that lives for one request."""
        status = await self.start(repository, digest.algorithm)
        try:
            return await self.finish(repository, status.id, digest, body, None, length or None)
        except BaseException:
            row = self.store.get_upload(repository, status.id)
            if row is not None:
                await self._discard(row, row.storage_handle)
            raise

    # -- internals ----------------------------------------------------------------------------

    def _lease(self, repository: str, upload_id: str) -> _Lease:
        return _Lease(self, repository, upload_id)

    async def _write(
        self,
        row: UploadRow,
        token: str,
        body: AsyncIterator[bytes],
        chunk: ChunkRange | None,
        content_length: int | None,
    ) -> tuple[int, Hasher, UploadWriter]:
        """Stream a body into the upload; returns the new offset, hasher and the open writer."""
        expected = content_length
        if chunk is not None:
            if chunk.start != row.offset or chunk.end < chunk.start - 1:
                raise RangeNotSatisfiable(
                    f"chunk starts at {chunk.start}, upload is at {row.offset}",
                    headers=_range_headers(row.offset),
                )
            if content_length is not None and content_length != chunk.length:
                raise SizeInvalid(
                    f"Content-Length {content_length} does not match Content-Range "
                    f"{chunk.start}-{chunk.end}"
                )
            expected = chunk.length
        hasher = restore_hasher(row.algorithm, row.hash_state)
        try:
            writer = await asyncio.to_thread(
                self.blobs.open_upload, row.storage_handle, row.offset, expected
            )
        except FileNotFoundError:
            raise BlobUploadUnknown("upload storage is gone") from None
        renew = self._renewer(row.id, token)
        try:
            written = await pump(body, hasher, writer, renew)
            if expected is not None and written != expected:
                raise SizeInvalid(f"received {written} bytes, expected {expected}")
        except BaseException:
            await asyncio.to_thread(writer.close)
            raise
        return row.offset + written, hasher, writer

    def _renewer(self, upload_id: str, token: str) -> Callable[[], object]:
        async def renew() -> None:
            ok = await asyncio.to_thread(
                self.store.renew_upload_lease, upload_id, token, self.lease_seconds
            )
            if not ok:
                raise BlobUploadInvalid("upload was taken over by another request")

        return renew

    async def _save(
        self, row: UploadRow, token: str, offset: int, hasher: Hasher, handle: str
    ) -> None:
        saved = await asyncio.to_thread(
            self.store.save_upload_progress, row.id, token, offset, hasher.serialize(),
            handle if handle != row.storage_handle else None,
        )
        if not saved:
            raise BlobUploadInvalid("upload was taken over by another request")

    async def _final_digest(
        self, row: UploadRow, handle: str, length: int, hasher: Hasher, algorithm: str
    ) -> str:
        if algorithm == row.algorithm:
            return hasher.finalize()
        # The client names another algorithm only at the end: hash the stored bytes again.
        return await asyncio.to_thread(_hash_stored, self.blobs, handle, length, algorithm)

    async def _discard(self, row: UploadRow, handle: str) -> None:
        await asyncio.to_thread(self.store.delete_upload, row.id)
        await asyncio.to_thread(self.blobs.abort_upload, handle)


class _Lease:
    """Hold an upload's writer lease for the duration of one request."""

    def __init__(self, service: UploadService, repository: str, upload_id: str) -> None:
        self.service, self.repository, self.upload_id = service, repository, upload_id
        self.token = uuid.uuid4().hex

    async def __aenter__(self) -> tuple[UploadRow, str]:
        try:
            row = await asyncio.to_thread(
                self.service.store.claim_upload,
                self.repository,
                self.upload_id,
                self.token,
                self.service.lease_seconds,
            )
        except UploadBusy:
            current = self.service.store.get_upload(self.repository, self.upload_id)
            raise RangeNotSatisfiable(
                "another request is writing to this upload",
                headers=_range_headers(current.offset if current else 0),
            ) from None
        if row is None:
            raise BlobUploadUnknown()
        return row, self.token

    async def __aexit__(self, exc_type: object, *_: object) -> None:
        # On success, saving progress (or committing) already released the lease.
        if exc_type is not None:
            await asyncio.to_thread(
                self.service.store.release_upload, self.upload_id, self.token
            )


async def pump(
    body: AsyncIterator[bytes],
    hasher: Hasher,
    writer: UploadWriter,
    renew: Callable[[], object] | None = None,
) -> int:
    """Hash and write a body as it streams; the next buffer is read while a thread writes."""
    loop = asyncio.get_running_loop()
    pending: asyncio.Future | None = None
    parts: list[bytes] = []
    buffered = total = 0
    last_renew = time.monotonic()

    def sink(data: bytes) -> asyncio.Future:
        # Hashing and writing release the GIL: run them side by side, in order per stream.
        return asyncio.gather(
            loop.run_in_executor(None, hasher.update, data),
            loop.run_in_executor(None, writer.write, data),
        )

    try:
        async for part in body:
            if not part:
                continue
            parts.append(part)
            buffered += len(part)
            if buffered >= PUMP_BUFFER:
                data = b"".join(parts)
                parts.clear()
                buffered = 0
                if pending is not None:
                    await pending
                pending = sink(data)
                total += len(data)
                if renew is not None and time.monotonic() - last_renew > LEASE_RENEW_EVERY:
                    last_renew = time.monotonic()
                    await renew()  # type: ignore[misc]
        if pending is not None:
            await pending
            pending = None
        if parts:
            data = b"".join(parts)
            await sink(data)
            total += len(data)
    finally:
        if pending is not None:
            # Never close the writer under a running write.
            await asyncio.gather(pending, return_exceptions=True)
    return total


def _hash_stored(blobs: BlobStore, handle: str, length: int, algorithm: str) -> str:
    hasher = new_hasher(algorithm)
    for chunk in blobs.read_upload(handle, length):
        hasher.update(chunk)
    return hasher.finalize()


def _range_headers(offset: int) -> dict[str, str]:
    return {"Range": f"0-{max(offset - 1, 0)}"}
