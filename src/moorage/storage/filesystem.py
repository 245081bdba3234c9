"""Filesystem BlobStore: uploads are files that are renamed into place on commit."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

_HANDLE_RE = re.compile(r"^[a-zA-Z0-9-]{1,64}$")
_KEY_RE = re.compile(r"^blobs/[a-z0-9]+/[a-f0-9]{2}/[a-f0-9]{64,128}$")
READ_CHUNK = 1 << 20


class FileUploadWriter:
    """Appends to an upload file; blocking, used from a worker thread."""

    def __init__(self, path: Path, offset: int) -> None:
        self._fd = os.open(path, os.O_WRONLY)
        # Bytes past the acknowledged offset come from a request that failed or a crash.
        os.ftruncate(self._fd, offset)
        os.lseek(self._fd, offset, os.SEEK_SET)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        os.close(self._fd)


class FilesystemBlobStore:
    """Blobs under `<root>/blobs/<alg>/<xx>/<hex>`, uploads under `<root>/uploads/<id>`."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        (self.root / "uploads").mkdir(parents=True, exist_ok=True)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)

    def _upload_path(self, handle: str) -> Path:
        if not _HANDLE_RE.match(handle):
            raise ValueError("invalid upload handle")
        return self.root / "uploads" / handle

    def _blob_path(self, key: str) -> Path:
        if not _KEY_RE.match(key):
            raise ValueError("invalid blob key")
        return self.root / key

    def create_upload(self, upload_id: str) -> str:
        self._upload_path(upload_id).touch(exist_ok=False)
        return upload_id

    def open_upload(self, handle: str, offset: int) -> FileUploadWriter:
        return FileUploadWriter(self._upload_path(handle), offset)

    def read_upload(self, handle: str, length: int) -> Iterator[bytes]:
        return _read_range(self._upload_path(handle), 0, length)

    def commit_upload(self, handle: str, digest: str) -> str:
        algorithm, hex_ = digest.split(":", 1)
        key = f"blobs/{algorithm}/{hex_[:2]}/{hex_}"
        src, dst = self._upload_path(handle), self._blob_path(key)
        if dst.is_file():
            src.unlink(missing_ok=True)  # identical content is stored once
            return key
        if self.fsync:
            fd = os.open(src, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        dst.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: readers see the old complete file or the new complete one, never a partial.
        os.replace(src, dst)
        if self.fsync:
            _fsync_dir(dst.parent)
        return key

    def abort_upload(self, handle: str) -> None:
        self._upload_path(handle).unlink(missing_ok=True)

    def blob_path(self, key: str) -> str | None:
        return str(self._blob_path(key))

    def open_blob(self, key: str, offset: int, length: int) -> Iterator[bytes]:
        return _read_range(self._blob_path(key), offset, length)

    def blob_exists(self, key: str) -> bool:
        return self._blob_path(key).is_file()

    def delete_blob(self, key: str) -> None:
        self._blob_path(key).unlink(missing_ok=True)


def _read_range(path: Path, offset: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(offset)
        remaining = length
        while remaining > 0:
            chunk = f.read(min(READ_CHUNK, remaining))
            if not chunk:
                raise OSError(f"short read from {path.name}")
            remaining -= len(chunk)
            yield chunk


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
