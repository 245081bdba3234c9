"""Layer builders for the scan tests: real tar streams, gzip'd or zstd'd in the test."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterator


def tar_bytes(files: dict[str, bytes | None], *, symlinks: dict[str, str] | None = None,
              dirs: tuple[str, ...] = (), fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar of `files` (None: an empty whiteout-style marker file), dirs and symlinks."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            body = data or b""
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return out.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, 6)


def zst(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


def chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]
