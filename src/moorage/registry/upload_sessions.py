"""Upload session rows: one transaction per step, the writer lease, and the GC-safe commit."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

from ..metadata.queries.outbox import Records
from ..metadata.rows import BlobRow, BytesGone, UploadBusy, UploadGone, UploadRow
from ..oci.digest import HASH_STATE_VERSION
from ..oci.errors import BlobUploadInvalid, BlobUploadUnknown, RangeNotSatisfiable

if TYPE_CHECKING:
    from ..metadata.uow import Database


class UploadSessions:
    """The upload rows UploadService reads and writes, each call its own transaction."""

    def __init__(self, database: Database, lease_seconds: float) -> None:
        self.database = database
        self.lease_seconds = lease_seconds

    def create(self, upload_id: str, repository: str, algorithm: str, state: bytes,
               handle: str) -> None:
        """Record a new, empty upload session."""
        with self.database.write() as uow:
            uow.uploads.create(upload_id, repository, algorithm, state, HASH_STATE_VERSION,
                               handle)

    def get(self, repository: str, upload_id: str) -> UploadRow | None:
        """The upload's row in `repository`, or None."""
        with self.database.read() as uow:
            return uow.uploads.get(repository, upload_id)

    def find_blob(self, digest: str) -> BlobRow | None:
        """The stored blob with `digest`, in any repository, or None."""
        with self.database.read() as uow:
            return uow.blobs.find(digest)

    def claim(self, repository: str, upload_id: str, token: str) -> UploadRow | None:
        """Take the writer lease under `token` (UploadBusy while another request holds it)."""
        with self.database.write() as uow:
            return uow.uploads.claim(repository, upload_id, token, self.lease_seconds)

    def renew(self, upload_id: str, token: str) -> bool:
        """Extend the lease; False if it was taken over."""
        with self.database.write() as uow:
            return uow.uploads.renew(upload_id, token, self.lease_seconds)

    def save_progress(self, upload_id: str, token: str, offset: int, state: bytes,
                      handle: str | None, keep_lease: float | None) -> bool:
        """Persist offset, hash state and handle; False if the lease was taken over."""
        with self.database.write() as uow:
            return uow.uploads.save_progress(upload_id, token, offset, state, handle, keep_lease)

    def release(self, upload_id: str, token: str) -> None:
        """Give the lease back without saving progress."""
        with self.database.write() as uow:
            uow.uploads.release(upload_id, token)

    def delete(self, upload_id: str) -> None:
        """Forget the upload session."""
        with self.database.write() as uow:
            uow.uploads.delete(upload_id)

    def commit(self, repository: str, upload_id: str | None, digest: str, size: int, key: str,
               reused: bool, events: Records) -> str | None:
        """Record an upload's content GC-safely, with its events, in one transaction."""
        try:
            with self.database.write() as uow:
                recorded = uow.blobs.commit(repository, upload_id, digest, size, key, reused)
                uow.emit(events)
                return recorded
        except BytesGone:
            if reused:
                return None
            raise BlobUploadInvalid(
                f"{digest} was garbage-collected while this upload committed; push it again"
            ) from None
        except UploadGone:
            raise BlobUploadUnknown("the upload expired while it was being committed") from None


class UploadLease:
    """Hold an upload's writer lease for the duration of one request."""

    def __init__(self, sessions: UploadSessions, repository: str, upload_id: str) -> None:
        self.sessions, self.repository, self.upload_id = sessions, repository, upload_id
        self.token = uuid.uuid4().hex

    async def __aenter__(self) -> tuple[UploadRow, str]:
        try:
            row = await asyncio.to_thread(
                self.sessions.claim, self.repository, self.upload_id, self.token
            )
        except UploadBusy:
            current = self.sessions.get(self.repository, self.upload_id)
            raise RangeNotSatisfiable(
                "another request is writing to this upload",
                headers=range_headers(current.offset if current else 0),
            ) from None
        if row is None:
            raise BlobUploadUnknown()
        return row, self.token

    async def __aexit__(self, exc_type: object, *_: object) -> None:
        # On success, saving progress (or committing) already released the lease.
        if exc_type is not None:
            await asyncio.to_thread(self.sessions.release, self.upload_id, self.token)


def range_headers(offset: int) -> dict[str, str]:
    """The `Range` header telling a client which bytes of an upload are acknowledged."""
    return {"Range": f"0-{max(offset - 1, 0)}"}
