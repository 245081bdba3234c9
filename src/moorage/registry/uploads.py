"""Blob upload sessions: streamed, hashed as they arrive, resumable across processes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..auth.scopes import namespace_of
from ..events.types import SYSTEM, Actor, BlobPushed, records
from ..metadata.queries.outbox import Records
from ..metadata.rows import UploadRow
from ..oci.digest import (
    DEFAULT_ALGORITHM,
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
    Unavailable,
)
from ..storage.base import BlobStore, UploadWriter
from .stream import Interrupted, StopSignal, pump
from .upload_sessions import UploadLease, UploadSessions, range_headers

if TYPE_CHECKING:
    from ..metadata.uow import Database
    from ..policy.quota import UploadQuota
    from .blobs import BlobService

log = logging.getLogger(__name__)

# Of the repositories that could lend a blob to a mount, those the caller may take it from.
Lenders = Callable[[list[str]], Awaitable[list[str]]]

@dataclass(frozen=True, slots=True)
class UploadStatus:
    """Where an upload stands: its id and how many bytes are acknowledged."""

    id: str
    offset: int


@dataclass(frozen=True, slots=True)
class Begun:
    """What starting an upload did: a blob now in the repository (mounted or pushed whole),
    or an open session."""

    blob: Digest | None = None
    session: UploadStatus | None = None


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
        database: Database,
        blobs: BlobStore,
        lease_seconds: float,
        quota: UploadQuota,
        mounts: BlobService,
        checkpoint_bytes: int = 0,
    ) -> None:
        self.database = database
        self.blobs = blobs
        self.mounts = mounts
        self.lease_seconds = lease_seconds
        self.quota = quota
        self.checkpoint_bytes = checkpoint_bytes
        self.sessions = UploadSessions(database, lease_seconds)
        self._streams: set[StopSignal] = set()
        self._stopping = False

    def drain(self) -> None:
        """Graceful shutdown: every streaming PATCH checkpoints what it received and ends."""
        self._stopping = True
        for stream in list(self._streams):
            stream.request()

    async def begin(
        self,
        repository: str,
        body: AsyncIterator[bytes],
        length: int | None,
        *,
        mount: Digest | None = None,
        mount_from: str | None = None,
        lenders: Lenders | None = None,
        digest: Digest | None = None,
        algorithm: str = DEFAULT_ALGORITHM,
        actor: Actor = SYSTEM,
    ) -> Begun:
        """A POST to uploads/: mount `mount` (from `mount_from`, else from any repository
        holding it) if `lenders` lets one lend it; failing that push `body` whole when
        `digest` is given; else open a session (the body is not read)."""
        if mount is not None:
            candidates = ([mount_from] if mount_from is not None
                          else await asyncio.to_thread(self.mounts.holders, mount))
            sources = await lenders(candidates) if lenders is not None else []
            if await self.mounts.mount(repository, mount, sources, actor):
                return Begun(blob=mount)
        if digest is not None:
            await self.push_whole(repository, digest, body, length, actor)
            return Begun(blob=digest)
        return Begun(session=await self.start(repository, algorithm))

    async def start(self, repository: str, algorithm: str = DEFAULT_ALGORITHM) -> UploadStatus:
        """Open a new upload session in `repository`."""
        check_algorithm(algorithm)
        upload_id = str(uuid.uuid4())
        handle = await asyncio.to_thread(self.blobs.create_upload, upload_id)
        state = new_hasher(algorithm).serialize()
        await asyncio.to_thread(
            self.sessions.create, upload_id, repository, algorithm, state, handle
        )
        return UploadStatus(upload_id, 0)

    async def status(self, repository: str, upload_id: str) -> UploadStatus:
        """The acknowledged offset of an upload."""
        row = await asyncio.to_thread(self.sessions.get, repository, upload_id)
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
            await asyncio.to_thread(self._check_quota, repository, row, chunk, content_length)
            offset, hasher, writer = await self._write(
                row, token, body, chunk, content_length, checkpoints=True
            )
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
        actor: Actor = SYSTEM,
    ) -> Digest:
        """Take an optional last chunk, verify the whole blob against `digest`, and commit it
        (with its BlobPushed event, of `actor`)."""
        async with self._lease(repository, upload_id) as (row, token):
            offset, hasher = row.offset, restore_hasher(row.algorithm, row.hash_state)
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
                pushed = records(BlobPushed(actor=actor, repository=repository,
                                            digest=str(digest), size=offset))
                recorded = await self._record_existing(repository, row, digest, offset, pushed)
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
                    recorded = await self._record(repository, row, digest, offset, key, False,
                                                  pushed)
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
        self, repository: str, row: UploadRow, digest: Digest, size: int, events: Records
    ) -> str | None:
        """Record the upload as content already stored, if it is; None: commit its own bytes."""
        existing = await asyncio.to_thread(self.sessions.find_blob, str(digest))
        if existing is None or not await asyncio.to_thread(
            self.blobs.blob_exists, existing.storage_key
        ):
            return None
        return await self._record(repository, row, digest, size, existing.storage_key, True,
                                  events)

    async def _record(
        self, repository: str, row: UploadRow, digest: Digest, size: int, key: str, reused: bool,
        events: Records,
    ) -> str | None:
        """Record committed bytes; the recorded key, or None when `reused` content was
        garbage-collected meanwhile (the caller then commits the upload's own bytes)."""
        return await asyncio.to_thread(
            self.sessions.commit, repository, row.id, str(digest), size, key, reused, events
        )

    def _check_quota(self, repository: str, row: UploadRow, chunk: ChunkRange | None,
                     content_length: int | None, digest: Digest | None = None) -> None:
        """Refuse a chunk before storing it when its declared size would exceed the quota."""
        declared = chunk.length if chunk is not None else content_length
        if declared:
            self.quota.check(self.database, namespace_of(repository), row.offset + declared,
                             str(digest) if digest else None)

    async def cancel(self, repository: str, upload_id: str) -> None:
        """Abandon an upload and free its storage."""
        row = await asyncio.to_thread(self.sessions.get, repository, upload_id)
        if row is None:
            raise BlobUploadUnknown()
        await self._discard(row, row.storage_handle)

    async def push_whole(
        self, repository: str, digest: Digest, body: AsyncIterator[bytes], length: int | None,
        actor: Actor = SYSTEM,
    ) -> Digest:
        """Single-request push (POST with ?digest=): a session that lives for one request."""
        status = await self.start(repository, digest.algorithm)
        try:
            return await self.finish(repository, status.id, digest, body, None, length or None,
                                     actor)
        except BaseException:
            row = await asyncio.to_thread(self.sessions.get, repository, status.id)
            if row is not None:
                await self._discard(row, row.storage_handle)
            raise

    # -- internals ----------------------------------------------------------------------------

    def _lease(self, repository: str, upload_id: str) -> UploadLease:
        return UploadLease(self.sessions, repository, upload_id)

    async def _write(
        self,
        row: UploadRow,
        token: str,
        body: AsyncIterator[bytes],
        chunk: ChunkRange | None,
        content_length: int | None,
        checkpoints: bool = False,
    ) -> tuple[int, Hasher, UploadWriter]:
        """Stream a body into the upload; returns the new offset, hasher and the open writer.

        With `checkpoints` (a PATCH), progress is persisted every `checkpoint_bytes` and when the
        server shuts down, which ends the request with `Unavailable` after that checkpoint.
        """
        expected = content_length
        if chunk is not None:
            if chunk.start != row.offset or chunk.end < chunk.start - 1:
                raise RangeNotSatisfiable(
                    f"chunk starts at {chunk.start}, upload is at {row.offset}",
                    headers=range_headers(row.offset),
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
        stop: StopSignal | None = None
        checkpoint: Callable[[int], Awaitable[None]] | None = None
        if checkpoints:
            stop = StopSignal()
            if self._stopping:
                stop.request()
            self._streams.add(stop)

            async def checkpoint(written: int) -> None:
                handle = await asyncio.to_thread(writer.checkpoint)
                await self._save(row, token, row.offset + written, hasher, handle, keep=True)

        try:
            written = await pump(
                body, hasher, writer, renew,
                checkpoint=checkpoint, every=self.checkpoint_bytes, stop=stop,
            )
            if expected is not None and written != expected:
                if checkpoint is not None and 0 < written < expected \
                        and writer.until_checkpoint() == 0:
                    # the client went away mid-body (an EOF, not a reset): what arrived is a
                    # valid prefix, kept so its retry sends only the rest
                    await checkpoint(written)
                raise SizeInvalid(f"received {written} bytes, expected {expected}")
        except Interrupted as exc:
            await asyncio.to_thread(writer.close)
            offset = row.offset + exc.written
            raise Unavailable(
                "the registry is shutting down; the upload resumes from the Range given",
                headers={**range_headers(offset), "Retry-After": "5"},
            ) from None
        except BaseException:
            await asyncio.to_thread(writer.close)
            raise
        finally:
            if stop is not None:
                self._streams.discard(stop)
        return row.offset + written, hasher, writer

    def _renewer(self, upload_id: str, token: str) -> Callable[[], object]:
        async def renew() -> None:
            ok = await asyncio.to_thread(self.sessions.renew, upload_id, token)
            if not ok:
                raise BlobUploadInvalid("upload was taken over by another request")

        return renew

    async def _save(
        self, row: UploadRow, token: str, offset: int, hasher: Hasher, handle: str,
        keep: bool = False,
    ) -> None:
        """Persist progress; `keep`: a checkpoint mid-chunk, which keeps (and renews) the lease."""
        saved = await asyncio.to_thread(
            self.sessions.save_progress, row.id, token, offset, hasher.serialize(),
            handle if handle != row.storage_handle else None,
            self.lease_seconds if keep else None,
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
        await asyncio.to_thread(self.sessions.delete, row.id)
        await asyncio.to_thread(self.blobs.abort_upload, handle)


def _hash_stored(blobs: BlobStore, handle: str, length: int, algorithm: str) -> str:
    hasher = new_hasher(algorithm)
    for chunk in blobs.read_upload(handle, length):
        hasher.update(chunk)
    return hasher.finalize()

