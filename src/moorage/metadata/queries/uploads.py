"""Upload sessions: creation, the writer lease, persisted progress."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from ..rows import UploadBusy, UploadRow
from ..schema import repositories, uploads

if TYPE_CHECKING:
    from ..uow import UnitOfWork

_UPLOAD = select(
    uploads.c.id,
    repositories.c.name,
    uploads.c.algorithm,
    uploads.c.offset,
    uploads.c.hash_state,
    uploads.c.hash_state_version,
    uploads.c.storage_handle,
    uploads.c.writer_token,
    uploads.c.writer_until,
).join(repositories, repositories.c.id == uploads.c.repository_id)


class UploadQueries:
    """Upload sessions within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def create(self, upload_id: str, repository: str, algorithm: str, hash_state: bytes,
               hash_state_version: str, storage_handle: str) -> None:
        """Record a new upload session."""
        now = time.time()
        self.conn.execute(
            uploads.insert().values(
                id=upload_id,
                repository_id=self.uow.repositories.ensure(repository),
                algorithm=algorithm,
                offset=0,
                hash_state=hash_state,
                hash_state_version=hash_state_version,
                storage_handle=storage_handle,
                created_at=now,
                updated_at=now,
            )
        )

    def get(self, repository: str, upload_id: str) -> UploadRow | None:
        """The upload session, if it exists in this repository."""
        row = self.conn.execute(
            _UPLOAD.where(uploads.c.id == upload_id, repositories.c.name == repository)
        ).first()
        return UploadRow(*row) if row else None

    def claim(self, repository: str, upload_id: str, token: str, lease_seconds: float
              ) -> UploadRow | None:
        """Take the writer lease of an upload; None when it is unknown, UploadBusy when held."""
        now = time.time()
        row = self.conn.execute(
            _UPLOAD.where(uploads.c.id == upload_id, repositories.c.name == repository)
            # PostgreSQL: two nodes claiming at once serialise on the row (SQLite's
            # BEGIN IMMEDIATE already does; the clause renders to nothing there).
            .with_for_update(of=uploads)
        ).first()
        if row is None:
            return None
        current = UploadRow(*row)
        if current.writer_token and (current.writer_until or 0) > now:
            raise UploadBusy()
        self.conn.execute(
            update(uploads)
            .where(uploads.c.id == upload_id)
            .values(writer_token=token, writer_until=now + lease_seconds)
        )
        return current

    def renew(self, upload_id: str, token: str, lease_seconds: float) -> bool:
        """Extend a held lease while a long chunk streams."""
        result = self.conn.execute(
            update(uploads)
            .where(uploads.c.id == upload_id, uploads.c.writer_token == token)
            .values(writer_until=time.time() + lease_seconds)
        )
        return result.rowcount == 1

    def save_progress(self, upload_id: str, token: str, offset: int, hash_state: bytes,
                      storage_handle: str | None = None,
                      keep_lease_seconds: float | None = None) -> bool:
        """Persist the acknowledged offset, hash state (and new storage handle); free the lease,
        or, with `keep_lease_seconds` (a checkpoint in the middle of a chunk), extend it."""
        now = time.time()
        values: dict[str, object] = {
            "offset": offset,
            "hash_state": hash_state,
            "writer_token": None,
            "writer_until": None,
            "updated_at": now,
        }
        if keep_lease_seconds is not None:
            del values["writer_token"]
            values["writer_until"] = now + keep_lease_seconds
        if storage_handle is not None:
            values["storage_handle"] = storage_handle
        result = self.conn.execute(
            update(uploads)
            .where(uploads.c.id == upload_id, uploads.c.writer_token == token)
            .values(**values)
        )
        return result.rowcount == 1

    def release(self, upload_id: str, token: str) -> None:
        """Give the lease back without changing progress."""
        self.conn.execute(
            update(uploads)
            .where(uploads.c.id == upload_id, uploads.c.writer_token == token)
            .values(writer_token=None, writer_until=None)
        )

    def release_all(self) -> None:
        """Free every writer lease (only for the embedded database at start: no writer lives)."""
        self.conn.execute(update(uploads).values(writer_token=None, writer_until=None))

    def delete(self, upload_id: str) -> None:
        """Forget an upload session."""
        self.conn.execute(delete(uploads).where(uploads.c.id == upload_id))
