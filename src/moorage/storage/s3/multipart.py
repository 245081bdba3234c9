"""An upload as one S3 multipart upload: part sizing, checkpoints, the writer that streams it,
and the listings of what S3 holds of unfinished uploads.

See storage/s3/store.py for the bucket layout the writer maintains.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING
from xml.etree import ElementTree

from .signer import PartUpload, xml_all, xml_find

if TYPE_CHECKING:
    from .store import S3BlobStore

MiB = 1 << 20
MIN_PART = 5 * MiB  # S3's minimum size of every part but the last
MAX_PARTS = 10_000
READ_CHUNK = 1 * MiB
CHECKPOINT_FORMAT = "moorage-s3-upload/1"


def part_size_for(part_number: int, base: int) -> int:
    """Target size of part `part_number`: doubles every 1,000 parts (16 MiB base: ~16 TiB)."""
    # Capped below S3's 5 GiB part limit, leaving room for a final remainder folded in.
    return min(base << ((part_number - 1) // 1000), 4 << 30)


def min_part_for(part_number: int) -> int:
    """Smallest part worth cutting at the end of a request.

    5 MiB (S3's minimum) while parts are plentiful; past 5,000 parts small chunks are gathered
    into bigger parts so that clients sending 5 MiB chunks still fit a big blob in 10,000 parts.
    """
    if part_number <= 5000:
        return MIN_PART
    return min(MIN_PART << ((part_number - 5001) // 1000 + 1), 1 << 30)


@dataclass
class Checkpoint:
    """The acknowledged state of one upload, as the newest checkpoint object records it."""

    upload_id: str
    multipart_id: str | None = None
    parts: list[tuple[str, int]] = field(default_factory=list)  # (ETag, size), part n at n-1
    segments: list[tuple[str, int]] = field(default_factory=list)  # (key, size), in order
    offset: int = 0

    @property
    def key(self) -> str:
        return f"blobs/{self.upload_id}"

    @property
    def pending(self) -> int:
        return sum(size for _, size in self.segments)

    def to_json(self) -> bytes:
        return json.dumps({
            "format": CHECKPOINT_FORMAT, "upload_id": self.upload_id,
            "multipart_id": self.multipart_id,
            "parts": self.parts, "segments": self.segments, "offset": self.offset,
        }).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Checkpoint:
        data = json.loads(raw)
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a Moorage upload checkpoint")
        return cls(
            data["upload_id"], data["multipart_id"], [tuple(p) for p in data["parts"]],
            [tuple(s) for s in data["segments"]], data["offset"],
        )


class S3UploadWriter:
    """Appends to an upload: streams parts to S3, checkpoints what was acknowledged."""

    def __init__(self, store: S3BlobStore, cp: Checkpoint, expected: int | None) -> None:
        self.store = store
        self.cp = cp
        # Bytes this request still brings, when it said (Content-Length); None: unknown.
        self.expected_left = expected
        self.part: PartUpload | None = None
        self.spool: IO[bytes] | None = None
        self.spooled = 0
        # Created by this request and named by no checkpoint yet (aborted on failure).
        self.created_multipart: str | None = None

    # -- the UploadWriter protocol ----------------------------------------------------------

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.part is not None:
                n = min(len(view), self.part.remaining)
                self.part.send(view[:n])
                view = view[n:]
                self._consumed(n)
                if self.part.remaining == 0:
                    self._finish_part()
                continue
            if self.expected_left is not None and self.expected_left >= len(view):
                available = self.cp.pending + self.spooled + self.expected_left
                number = len(self.cp.parts) + 1
                if available >= min_part_for(number):
                    self._open_part(self._plan_size(available, number))
                    continue
            # Not enough for a part yet, or a body of unknown length: spool it.
            self._spool_write(view)
            self._consumed(len(view))
            view = view[len(view):]
            number = len(self.cp.parts) + 1
            if self.cp.pending + self.spooled >= part_size_for(number, self.store.config.part_size):
                self._flush_pending_as_part()

    def checkpoint(self) -> str:
        """Make everything written durable in the bucket; return the handle that resumes it."""
        if self.part is not None:
            raise ValueError("checkpoint in the middle of a part")
        # A fresh name each time: a long chunk checkpoints as it streams, and the checkpoint the
        # database points at must never be overwritten by one it does not point at yet.
        token = uuid.uuid4().hex
        number = len(self.cp.parts) + 1
        if self.cp.pending + self.spooled >= min_part_for(number):
            self._flush_pending_as_part()
        elif self.spooled:
            key = f"uploads/{self.cp.upload_id}/{token}-{len(self.cp.segments)}.seg"
            self.store._put_file(key, self._spool_reader(), self.spooled)
            self.cp.segments.append((key, self.spooled))
            self._reset_spool()
        handle = f"s3:{self.cp.upload_id}:{token}"
        self.store._put_bytes(f"uploads/{self.cp.upload_id}/{token}.json", self.cp.to_json())
        # A checkpoint names the multipart upload now: a later failure must not abort it.
        self.created_multipart = None
        return handle

    def until_checkpoint(self) -> int:
        """Bytes left of the part being streamed (a declared part cannot be cut short)."""
        return self.part.remaining if self.part is not None else 0

    def commit(self, digest: str) -> str:
        """End the upload with what was written (no checkpoint); return the blob's key."""
        if self.part is not None:
            raise ValueError("commit in the middle of a part")
        key = self.store._finalize(self.cp, self._spool_reader() if self.spooled else None,
                                   self.spooled)
        self._reset_spool()
        self.created_multipart = None
        self.store._delete_prefix(f"uploads/{self.cp.upload_id}/")
        return key

    def close(self) -> None:
        if self.part is not None:
            self.part.cancel()
            self.part = None
        self._reset_spool()
        if self.created_multipart is not None:
            # The request failed before its state was acknowledged: nobody will ever see the
            # multipart upload it started.
            created, self.created_multipart = self.created_multipart, None
            self.store._abort_multipart(self.cp.key, created)

    # -- internals -------------------------------------------------------------------------

    def _consumed(self, n: int) -> None:
        self.cp.offset += n
        if self.expected_left is not None:
            self.expected_left -= n

    def _plan_size(self, available: int, number: int) -> int:
        target = part_size_for(number, self.store.config.part_size)
        # Never leave a remainder too small to be a part of its own.
        return available if available - target < min_part_for(number + 1) else target

    def _ensure_multipart(self) -> str:
        if self.cp.multipart_id is None:
            self.cp.multipart_id = self.store._create_multipart(self.cp.key)
            self.created_multipart = self.cp.multipart_id
        return self.cp.multipart_id

    def _open_part(self, size: int) -> None:
        number = len(self.cp.parts) + 1
        if number > MAX_PARTS:
            raise OSError("upload exceeds S3's 10,000 parts")
        part = PartUpload(
            self.store.signer, self.store._full(self.cp.key), self._ensure_multipart(), number, size
        )
        try:
            # What earlier requests left over, then what this one spooled, go first.
            for chunk in self.store._read_segments(self.cp.segments):
                part.send(chunk)
            for chunk in self._spool_chunks():
                part.send(chunk)
        except BaseException:
            part.cancel()
            raise
        self.cp.segments = []
        self._reset_spool()
        self.part = part
        if part.remaining == 0:
            self._finish_part()

    def _finish_part(self) -> None:
        assert self.part is not None
        part, self.part = self.part, None
        self.cp.parts.append((part.finish(), part.size))

    def _flush_pending_as_part(self) -> None:
        self._open_part(self.cp.pending + self.spooled)

    def _spool_write(self, data: memoryview) -> None:
        if self.spool is None:
            self.spool = tempfile.TemporaryFile(dir=self.store.config.spool_dir)  # noqa: SIM115
        self.spool.write(data)
        self.spooled += len(data)

    def _spool_chunks(self) -> Iterator[bytes]:
        if not self.spooled or self.spool is None:
            return
        self.spool.seek(0)
        while chunk := self.spool.read(READ_CHUNK):
            yield chunk

    def _spool_reader(self) -> Iterator[bytes]:
        return self._spool_chunks()

    def _reset_spool(self) -> None:
        if self.spool is not None:
            self.spool.close()
        self.spool, self.spooled = None, 0


# -- listings (what S3 holds of unfinished uploads) ---------------------------------------


def list_multipart_uploads(store: S3BlobStore) -> list[tuple[str, str, str]]:
    """(key relative to the prefix, multipart id, initiated) of unfinished uploads."""
    found: list[tuple[str, str, str]] = []
    query = {"uploads": "", "prefix": store._full("blobs/")}
    while True:
        _, body = store._request("GET", None, query)
        root = ElementTree.fromstring(body)
        for item in xml_all(root, "Upload"):
            key = xml_find(item, "Key") or ""
            rel = key[len(store.prefix) + 1:] if store.prefix else key
            found.append((rel, xml_find(item, "UploadId") or "",
                          xml_find(item, "Initiated") or ""))
        if (xml_find(root, "IsTruncated") or "").lower() != "true":
            return found
        query = {**query, "key-marker": xml_find(root, "NextKeyMarker") or "",
                 "upload-id-marker": xml_find(root, "NextUploadIdMarker") or ""}


def list_parts(store: S3BlobStore, key: str, multipart_id: str) -> list[tuple[int, str, int]]:
    """(number, ETag, size) of the parts S3 holds for an upload (paginated ListParts)."""
    found: list[tuple[int, str, int]] = []
    query = {"uploadId": multipart_id}
    while True:
        _, body = store._request("GET", key, query)
        root = ElementTree.fromstring(body)
        for item in xml_all(root, "Part"):
            found.append((int(xml_find(item, "PartNumber") or 0),
                          xml_find(item, "ETag") or "", int(xml_find(item, "Size") or 0)))
        if (xml_find(root, "IsTruncated") or "").lower() != "true":
            return found
        query = {**query, "part-number-marker": xml_find(root, "NextPartNumberMarker") or ""}
