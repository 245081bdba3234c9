"""Content-defined chunking of a byte stream: FastCDC cut points, BLAKE3 chunk ids.

Imported only by the chunking job and the delta API (pyfastcdc and blake3 stay out of the
request path's memory).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cut:
    """One chunk of a stream: where it is, how long, its id (BLAKE3 hex)."""

    offset: int
    length: int
    chunk_id: str


class _IterReader:
    """A file-like `read(n)` over an iterator of byte strings (what FastCDC streams from)."""

    def __init__(self, parts: Iterable[bytes]) -> None:
        self._parts = iter(parts)
        self._buf = memoryview(b"")

    def readinto(self, target: bytearray | memoryview) -> int:
        view = memoryview(target).cast("B")
        filled = 0
        while filled < len(view):
            if not self._buf:
                nxt = next(self._parts, None)
                if nxt is None:
                    break
                self._buf = memoryview(nxt)
                continue
            n = min(len(view) - filled, len(self._buf))
            view[filled:filled + n] = self._buf[:n]
            self._buf = self._buf[n:]
            filled += n
        return filled

    def read(self, size: int = -1) -> bytes:
        out = bytearray(max(size, 0))
        if size < 0:
            return bytes(b"".join([bytes(self._buf), *self._parts]))
        return bytes(out[:self.readinto(out)])


def chunk_id(data: bytes | memoryview) -> str:
    """The id of a chunk's bytes."""
    from blake3 import blake3

    return blake3(data).hexdigest()


def cut(parts: Iterable[bytes], avg_size: int) -> Iterator[Cut]:
    """The chunks of the concatenated `parts` (min avg/4, max avg*4), in constant memory."""
    from pyfastcdc import FastCDC

    cdc = FastCDC(avg_size=avg_size, min_size=avg_size // 4, max_size=avg_size * 4)
    for c in cdc.cut_stream(_IterReader(parts)):
        yield Cut(c.offset, c.length, chunk_id(c.data))
