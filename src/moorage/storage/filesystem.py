"""Filesystem BlobStore: uploads are files that are renamed into place on commit."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from .base import StoredObject

_HANDLE_RE = re.compile(r"^[a-zA-Z0-9-]{1,64}$")
# `<hex>-<upload id>` since per-commit keys; plain `<hex>` in data written before.
_KEY_RE = re.compile(r"^blobs/[a-z0-9]+/[a-f0-9]{2}/[a-f0-9]{64,128}(-[a-zA-Z0-9-]{1,64})?$")
READ_CHUNK = 1 << 20
# Start writeback of what was written every this many bytes, so the fsync at commit finds
# little left to do and the disk works while the network does.
WRITEBACK_EVERY = 32 << 20


class FileUploadWriter:
    """Appends to an upload file; blocking, used from a worker thread."""

    def __init__(
        self, store: FilesystemBlobStore, handle: str, offset: int, early_writeback: bool
    ) -> None:
        self._store, self._handle = store, handle
        self._fd = os.open(store._upload_path(handle), os.O_WRONLY)
        if os.fstat(self._fd).st_size < offset:
            # Acknowledged bytes are missing (a power loss with fsync off): never pad with zeros.
            self.close()
            raise FileNotFoundError(f"upload {handle} is shorter than its acknowledged offset")
        # Bytes past the acknowledged offset come from a request that failed or a crash.
        os.ftruncate(self._fd, offset)
        os.lseek(self._fd, offset, os.SEEK_SET)
        self._early_writeback = early_writeback
        self._flushed = self._position = offset

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._position += len(data)
        if self._early_writeback and self._position - self._flushed >= WRITEBACK_EVERY:
            _start_writeback(self._fd, self._flushed, self._position - self._flushed)
            self._flushed = self._position

    def checkpoint(self) -> str:
        # The file is the state: the handle stays the same. Bytes past a checkpoint's offset are
        # cut off by the next open_upload, so a later crash never spoils it.
        if self._store.fsync:
            os.fdatasync(self._fd)
            self._flushed = self._position
        return self._handle

    def until_checkpoint(self) -> int:
        return 0

    def commit(self, digest: str) -> str:
        return self._store.commit_upload(self._handle, digest)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FilesystemBlobStore:
    """Blobs under `<root>/blobs/<alg>/<xx>/<hex>-<upload id>`, uploads under `<root>/uploads/<id>`.

    Each commit gets a key of its own (like S3's key per upload): the garbage collector may be
    deleting the bytes of an earlier copy of the same digest, and must never delete these.
    Identical content is still stored once: the upload service reuses a recorded blob instead
    of committing a second copy.
    """

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        (self.root / "uploads").mkdir(parents=True, exist_ok=True)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)

    def _upload_path(self, handle: str) -> Path:
        if not _HANDLE_RE.fullmatch(handle):
            raise ValueError("invalid upload handle")
        return self.root / "uploads" / handle

    def _blob_path(self, key: str) -> Path:
        if not _KEY_RE.fullmatch(key):
            raise ValueError("invalid blob key")
        return self.root / key

    def create_upload(self, upload_id: str) -> str:
        self._upload_path(upload_id).touch(exist_ok=False)
        return upload_id

    def open_upload(
        self, handle: str, offset: int, expected: int | None = None
    ) -> FileUploadWriter:
        return FileUploadWriter(self, handle, offset, early_writeback=self.fsync)

    def read_upload(self, handle: str, length: int) -> Iterator[bytes]:
        return _read_range(self._upload_path(handle), 0, length)

    def committed_key(self, handle: str, digest: str) -> str:
        algorithm, hex_ = digest.split(":", 1)
        return f"blobs/{algorithm}/{hex_[:2]}/{hex_}-{handle}"

    def commit_upload(self, handle: str, digest: str) -> str:
        key = self.committed_key(handle, digest)
        src, dst = self._upload_path(handle), self._blob_path(key)
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

    def blob_size(self, key: str) -> int | None:
        try:
            return self._blob_path(key).stat().st_size
        except FileNotFoundError:
            return None

    def list_blobs(self) -> Iterator[StoredObject]:
        base = self.root / "blobs"
        for directory, _dirs, files in os.walk(base):
            for name in files:
                path = Path(directory) / name
                try:
                    info = path.stat()
                except FileNotFoundError:  # deleted while we walked
                    continue
                yield StoredObject(path.relative_to(self.root).as_posix(), info.st_size,
                                   info.st_mtime)

    def delete_blob(self, key: str) -> None:
        self._blob_path(key).unlink(missing_ok=True)

    def presigned_url(self, key: str, expires_seconds: int) -> str | None:
        return None  # served with sendfile instead

    def check(self) -> None:
        """Raise unless the blob directory is writable (readiness probe)."""
        if not os.access(self.root / "blobs", os.W_OK) or not os.access(
            self.root / "uploads", os.W_OK
        ):
            raise OSError(f"{self.root} is not writable")


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


def _load_sync_file_range():  # type: ignore[no-untyped-def]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return fn


_SYNC_FILE_RANGE = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range to disk now, without waiting or evicting it."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def link_or_copy(source: Path, target: Path) -> bool:
    """Put `source`'s bytes at `target`: a hard link on the same filesystem (blobs are never
    rewritten in place, so sharing the inode is safe), else a copy. True when linked."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
    shutil.copyfile(source, target)
    return False
