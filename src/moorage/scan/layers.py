"""Image layers read as streams: tar, tar+gzip or tar+zstd, nothing extracted to disk.

Our own tar header parser rather than `tarfile`: tarfile keeps every member's TarInfo and reads
a PAX header of any declared size into memory, both unbounded on a hostile layer. Here a member
is read only when a cataloger asks for it (and fits the cap), everything else is streamed past,
and entry paths are normalised strings only: nothing is ever opened by them.
"""

from __future__ import annotations

import posixpath
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol, cast

BLOCK = 512
READ_CHUNK = 64 * 1024
MEMBER_CAP = 8 << 20  # largest member handed to a cataloger
HEADER_CAP = 1 << 20  # largest PAX / GNU long-name header we accept
RATIO_FLOOR = 8 << 20  # the ratio check starts once this much is decompressed

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


class LayerError(Exception):
    """A layer cannot be read as a tar stream (corrupt, unknown format, hostile header)."""


class ScanLimitExceeded(LayerError):
    """A scan limit (entries, decompressed bytes, compression ratio) was exceeded."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one image scan may cost."""

    max_entries: int = 500_000
    max_bytes: int = 20 << 30
    max_ratio: float = 200.0
    member_cap: int = MEMBER_CAP


@dataclass(frozen=True, slots=True)
class Entry:
    """One tar member: a normalised relative path, its kind and size."""

    path: str
    kind: str  # file, dir, symlink, hardlink, other
    size: int
    linkname: str = ""
    mode: int = 0o644


@dataclass(frozen=True, slots=True)
class Spool:
    """What a cataloger asks for when it needs a member as a file (e.g. a SQLite database):
    written to a temporary file, at most `max_bytes`."""

    max_bytes: int


@dataclass(frozen=True, slots=True)
class Spooled:
    """A member written to a temporary file, deleted as soon as its consumer moves on."""

    path: str
    size: int


class Scanner(Protocol):
    """Sees a member's bytes as they stream past, never the whole member at once."""

    def feed(self, data: bytes) -> bool:
        """Take the next piece; False: seen enough (the rest is skipped)."""
        ...

    def result(self) -> Any:
        """What the scanner made of the member (handed on as the member's data)."""
        ...


@dataclass(frozen=True, slots=True)
class Scan:
    """What a cataloger asks for when it looks for something inside large files (e.g. Go
    build info in executables): the member streams through `start()`'s scanner."""

    start: Callable[[], Scanner]


# Whether a member is read: False (skip), True (as bytes, within the member cap), a Spool or
# a Scan.
Want = Callable[[Entry], "bool | Spool | Scan"]


class Budget:
    """Entry and byte counts shared by every layer of one scan."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.entries = 0
        self.bytes = 0

    def entry(self) -> None:
        """Count one more tar entry."""
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise ScanLimitExceeded(
                f"more than {self.limits.max_entries} tar entries (scan_max_entries)")

    def add_bytes(self, n: int) -> None:
        """Count `n` more decompressed bytes."""
        self.bytes += n
        if self.bytes > self.limits.max_bytes:
            raise ScanLimitExceeded(
                f"more than {self.limits.max_bytes} decompressed bytes (scan_max_bytes)")


class _Source:
    """Compressed chunks as a byte source, counting what was consumed."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = b""
        self.consumed = 0

    def peek(self, n: int) -> bytes:
        """The first `n` bytes, left in place."""
        while len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        return self._buf[:n]

    def chunk(self) -> bytes:
        """The next piece of input (b"" at the end)."""
        if self._buf:
            data, self._buf = self._buf, b""
        else:
            data = next(self._chunks, b"")
            while data == b"" and (more := next(self._chunks, None)) is not None:
                data = more
        self.consumed += len(data)
        return data

    def read(self, n: int = -1) -> bytes:
        """File-like read for decompressors that pull (may return fewer bytes)."""
        return self.chunk()


class _Raw:
    def __init__(self, source: _Source) -> None:
        self.source = source

    def read(self, n: int) -> bytes:
        return self.source.chunk()


class _Gzip:
    """gzip members (concatenated ones too), inflated at most `n` bytes at a time."""

    def __init__(self, source: _Source) -> None:
        self.source = source
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""

    def read(self, n: int) -> bytes:
        while True:
            data = self._pending or self._d.unconsumed_tail or self.source.chunk()
            self._pending = b""
            if not data:
                if not self._d.eof:
                    raise LayerError("gzip layer is truncated")
                return b""
            out = self._d.decompress(data, n)
            if self._d.eof and self._d.unused_data.strip(b"\0"):
                # Another gzip member follows (pigz and some builders concatenate them).
                self._pending = self._d.unused_data
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            if out:
                return out


class _Zstd:
    def __init__(self, source: _Source) -> None:
        import zstandard  # function-level: only a zstd layer pays for it

        self._reader = zstandard.ZstdDecompressor().stream_reader(
            cast("IO[bytes]", source), read_size=READ_CHUNK, read_across_frames=True)

    def read(self, n: int) -> bytes:
        return self._reader.read(n)


class _Plain:
    """Decompressed bytes of a layer, with `read(n)` and the byte / ratio limits applied."""

    def __init__(self, source: _Source, decoder: Any, compressed: bool, budget: Budget) -> None:
        self.source = source
        self.decoder = decoder
        self.compressed = compressed
        self.budget = budget
        self._buf = bytearray()
        self._pos = 0
        self.produced = 0
        self._eof = False

    def _fill(self) -> bool:
        out = self.decoder.read(4 * READ_CHUNK)
        if not out:
            self._eof = True
            return False
        self.produced += len(out)
        self.budget.add_bytes(len(out))
        limit = self.budget.limits.max_ratio
        if self.compressed and self.produced > RATIO_FLOOR and (
                self.produced > limit * max(self.source.consumed, 1)):
            raise ScanLimitExceeded(f"compression ratio above {limit:g} (scan_max_ratio)")
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += out
        return True

    def read(self, n: int) -> bytes:
        """Up to `n` bytes (fewer only at the end of the stream)."""
        while len(self._buf) - self._pos < n and not self._eof:
            self._fill()
        data = bytes(self._buf[self._pos:self._pos + n])
        self._pos += len(data)
        return data

    def skip(self, n: int) -> None:
        """Stream past `n` bytes without keeping them."""
        while n > 0:
            have = len(self._buf) - self._pos
            if have == 0:
                if self._eof or not self._fill():
                    raise LayerError("layer ends inside a tar member")
                continue
            step = min(have, n)
            self._pos += step
            n -= step


def _decoder(source: _Source) -> tuple[Any, bool]:
    """The decompressor the layer's magic bytes call for, and whether it is compressed."""
    head = source.peek(BLOCK)
    if head.startswith(GZIP_MAGIC):
        return _Gzip(source), True
    if head.startswith(ZSTD_MAGIC):
        return _Zstd(source), True
    if _is_tar_header(head) or (head and not head.strip(b"\0")):
        return _Raw(source), False
    raise LayerError("not a tar, tar+gzip or tar+zstd layer (unknown magic bytes)")


def _is_tar_header(block: bytes) -> bool:
    if len(block) < BLOCK:
        return False
    try:
        return _checksum_ok(block)
    except ValueError:
        return False


def _checksum_ok(block: bytes) -> bool:
    stored = _octal(block[148:156])
    total = sum(block[:148]) + 8 * 32 + sum(block[156:])
    return stored == total


def _octal(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256 for large values
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip(b" \0")
    return int(text, 8) if text else 0


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def normalise(name: str) -> str:
    """A tar member name as a path relative to the image root: no leading `/` or `./`, no
    `..` escaping the root (a runtime resolves those inside the root too)."""
    path = posixpath.normpath("/" + name.replace("\\", "/"))
    return path.lstrip("/")


def _pax(data: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise LayerError("malformed PAX header") from None
        if length <= 0 or pos + length > len(data):
            raise LayerError("malformed PAX header")
        record = data[space + 1:pos + length - 1]
        key, _, value = record.partition(b"=")
        found[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return found


KINDS = {b"0": "file", b"\0": "file", b"7": "file", b"S": "file", b"1": "hardlink",
         b"2": "symlink", b"5": "dir"}


def _spool(stream: _Plain, entry: Entry, padded: int) -> Iterator[tuple[Entry, Spooled]]:
    with tempfile.NamedTemporaryFile(prefix="moorage-scan-") as tmp:
        left = entry.size
        while left:
            chunk = stream.read(min(left, READ_CHUNK))
            if not chunk:
                raise LayerError("layer ends inside a tar member")
            tmp.write(chunk)
            left -= len(chunk)
        stream.skip(padded - entry.size)
        tmp.flush()
        yield entry, Spooled(tmp.name, entry.size)


def _scan(stream: _Plain, entry: Entry, padded: int, scan: Scan) -> tuple[Entry, Any]:
    scanner = scan.start()
    left = entry.size
    while left:
        chunk = stream.read(min(left, 4 * READ_CHUNK))
        if not chunk:
            raise LayerError("layer ends inside a tar member")
        left -= len(chunk)
        if not scanner.feed(chunk):
            break
    stream.skip(left + padded - entry.size)
    return entry, scanner.result()


def read_tar(stream: _Plain, budget: Budget, want: Want
             ) -> Iterator[tuple[Entry, Any]]:
    """Each member as (entry, its bytes if `want`ed and within the cap, a Spooled temporary
    file or a Scan's result if `want` asked for one, else None)."""
    long_name: str | None = None
    long_link: str | None = None
    pax: dict[str, str] = {}
    while True:
        block = stream.read(BLOCK)
        if len(block) < BLOCK:
            if block.strip(b"\0"):
                raise LayerError("layer ends inside a tar header")
            return
        if not block.strip(b"\0"):
            return  # end-of-archive marker; trailing padding is not read
        try:
            if not _checksum_ok(block):
                raise LayerError("bad tar header checksum")
            size = _octal(block[124:136])
        except ValueError:
            raise LayerError("malformed tar header") from None
        if size < 0:
            raise LayerError("negative member size in a tar header")
        type_flag = block[156:157]
        padded = -(-size // BLOCK) * BLOCK
        if type_flag in (b"x", b"g", b"L", b"K"):
            if size > HEADER_CAP:
                raise LayerError(f"tar extension header of {size} bytes (at most {HEADER_CAP})")
            data = stream.read(padded)[:size]
            if len(data) < size:
                raise LayerError("layer ends inside a tar header")
            if type_flag == b"x":
                pax = _pax(data)
            elif type_flag == b"L":
                long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif type_flag == b"K":
                long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue  # global PAX headers change nothing we use
        budget.entry()
        name = _text(block[0:100])
        prefix = _text(block[345:500]) if block[257:262] == b"ustar" else ""
        if prefix and block[257:263] == b"ustar\x00":
            name = f"{prefix}/{name}"
        name = pax.get("path", long_name or name)
        link = pax.get("linkpath", long_link or _text(block[157:257]))
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise LayerError("malformed PAX size") from None
            padded = -(-size // BLOCK) * BLOCK
        long_name = long_link = None
        pax = {}
        kind = KINDS.get(type_flag, "other")
        if kind in ("symlink", "hardlink", "dir"):
            padded = size = 0  # their size field carries no data (GNU tar may set one anyway)
        try:
            mode = _octal(block[100:108]) & 0o7777
        except ValueError:
            mode = 0
        entry = Entry(normalise(name), kind, size, link, mode)
        asked = want(entry) if kind == "file" and entry.path else False
        if isinstance(asked, Spool) and size <= asked.max_bytes:
            yield from _spool(stream, entry, padded)
        elif isinstance(asked, Scan):
            yield _scan(stream, entry, padded, asked)
        elif asked and not isinstance(asked, Spool) and size <= budget.limits.member_cap:
            data = stream.read(padded)
            if len(data) < padded:
                raise LayerError("layer ends inside a tar member")
            yield entry, data[:size]
        else:
            stream.skip(padded)
            yield entry, None


def iter_layer(chunks: Iterable[bytes], budget: Budget, want: Want
               ) -> Iterator[tuple[Entry, Any]]:
    """The members of one layer (tar, tar+gzip or tar+zstd by magic bytes), as `read_tar`."""
    source = _Source(chunks)
    try:
        decoder, compressed = _decoder(source)
        yield from read_tar(_Plain(source, decoder, compressed, budget), budget, want)
    except (zlib.error, EOFError) as exc:
        raise LayerError(f"corrupt compressed layer: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("zstandard") or type(exc).__name__ == "ZstdError":
            raise LayerError(f"corrupt zstd layer: {exc}") from None
        raise


def whiteout_target(path: str) -> tuple[str, bool] | None:
    """For a whiteout entry: (the path it removes, True if it clears that directory)."""
    parent, base = posixpath.split(path)
    if base == OPAQUE:
        return parent, True
    if base.startswith(WHITEOUT):
        return posixpath.join(parent, base[len(WHITEOUT):]), False
    return None


class Filesystem:
    """The catalogued files of the image as the layers stack up (whiteouts honoured).

    Only the files a cataloger wanted are tracked (path → what it made of them), so memory is
    bounded by what is found, not by the image's size.
    """

    def __init__(self) -> None:
        self.files: dict[str, Any] = {}
        self._dirs: dict[str, int] = {}  # ancestor dir → tracked files under it

    def _ancestors(self, path: str) -> Iterator[str]:
        while "/" in path:
            path = path.rsplit("/", 1)[0]
            yield path

    def _drop(self, path: str) -> tuple[str, Any]:
        value = self.files.pop(path)
        for d in self._ancestors(path):
            self._dirs[d] -= 1
            if not self._dirs[d]:
                del self._dirs[d]
        return path, value

    def remove(self, path: str, below_only: bool = False) -> list[tuple[str, Any]]:
        """Remove `path` (unless below_only) and everything under it; what was removed."""
        if not path:  # the root itself (an opaque marker at the top)
            if not below_only:
                return []
            removed = list(self.files.items())
            self.files.clear()
            self._dirs.clear()
            return removed
        removed = []
        if not below_only and path in self.files:
            removed.append(self._drop(path))
        if path in self._dirs:
            prefix = path + "/"
            removed += [self._drop(key) for key in [k for k in self.files if k.startswith(prefix)]]
        return removed

    def put(self, path: str, value: Any) -> None:
        """Track `value` as what the file at `path` holds now."""
        if path not in self.files:
            for d in self._ancestors(path):
                self._dirs[d] = self._dirs.get(d, 0) + 1
        self.files[path] = value


def stack_layer(fs: Filesystem, entries: Iterable[tuple[Entry, Any]],
                parse: Callable[[Entry, Any], Any]) -> None:
    """Apply one layer on top of `fs`: its whiteouts and replacements hide lower files, and its
    wanted files (parsed by `parse`, None: not tracked) join."""
    removed: list[tuple[str, bool]] = []
    added: dict[str, Any] = {}
    for entry, data in entries:
        target = whiteout_target(entry.path)
        if target is not None:
            removed.append(target)
            continue
        if entry.kind != "dir":
            removed.append((entry.path, False))  # a file, link or device replaces what was there
        added.pop(entry.path, None)  # a later member of the same layer wins
        if data is not None:
            value = parse(entry, data)
            if value is not None:
                added[entry.path] = value
    # Whiteouts and replacements hide the lower layers only, never this layer's own files.
    for path, opaque in removed:
        fs.remove(path, below_only=opaque)
    for path, value in added.items():
        fs.put(path, value)
