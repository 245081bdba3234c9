"""Bounded reads of a stored blob: exact byte ranges, and a seekable file over them (for
walking an uncompressed tar's headers without reading its members)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

Open = Callable[[int, int], Iterator[bytes]]  # (offset, length) -> chunks of the blob


class RangeReader(io.RawIOBase):
    """A read-only, seekable view of a blob of `size` bytes that fetches only what is read."""

    def __init__(self, open_range: Open, size: int) -> None:
        self._open = open_range
        self.size = size
        self.pos = 0
        self.fetched = 0  # bytes read from the store (tests check that weights stay unread)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read_at(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes from `offset` (fewer only at the end of the blob)."""
        length = max(0, min(length, self.size - offset))
        if length == 0:
            return b""
        data = b"".join(self._open(offset, length))
        self.fetched += len(data)
        return data

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self.pos
        data = self.read_at(self.pos, size)
        self.pos += len(data)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
