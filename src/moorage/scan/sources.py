"""OSV documents read from what an operator brought in: per-ecosystem `all.zip` exports,
directories of JSON files (recursive) and single JSON files, one document at a time.

Zips are read here rather than with `zipfile.ZipFile`, which loads the whole central directory
(2 million entries would be ~1 GB of ZipInfo objects) and decompresses without a budget: the
central directory is walked one entry at a time and each member is inflated with a hard cap on
its size and its compression ratio, so a bomb is refused as soon as it shows itself.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

MAX_MEMBER_BYTES = 16 * 1024 * 1024
MAX_ENTRIES = 2_000_000
MAX_RATIO = 100
_CHUNK = 64 * 1024

_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_LOCAL = struct.Struct("<4s2B4HL2L2H")


class SourceError(Exception):
    """A path that cannot be imported at all (missing, unreadable, not a usable zip)."""


@dataclass(frozen=True)
class Problem:
    """A member or file that was refused or could not be parsed, and why."""

    origin: str
    reason: str
    whole_path: bool = False  # the path itself (a damaged or oversized zip), not one document


@dataclass(frozen=True)
class _Member:
    name: str
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int


def iter_documents(paths: Sequence[Path]) -> Iterator[tuple[str, Any]]:
    """(origin, parsed JSON or Problem) for every document under `paths`, in order. Every
    path is checked to exist before the first is read (SourceError); a zip that cannot be read
    further is one Problem with `whole_path` set, and the next path follows."""
    for path in paths:
        if not path.exists():
            raise SourceError(f"{path}: no such file or directory")
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*.json") if p.is_file()):
                yield str(file), _read_file(file)
        elif _is_zip(path):
            try:
                yield from _iter_zip(path)
            except SourceError as exc:
                yield str(path), Problem(str(path), str(exc), whole_path=True)
        else:
            yield str(path), _read_file(path)


def _is_zip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) in (b"PK\x03\x04", b"PK\x05\x06")


def _parse(origin: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        return Problem(origin, f"not JSON: {str(exc)[:120]}")


def _read_file(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_MEMBER_BYTES:
            return Problem(str(path), f"larger than {MAX_MEMBER_BYTES} bytes")
        return _parse(str(path), path.read_bytes())
    except OSError as exc:
        return Problem(str(path), f"unreadable: {exc.strerror or exc}")


# -- zip ----------------------------------------------------------------------------------------


def _directory(f: IO[bytes], path: Path) -> tuple[int, int]:
    """(entry count, central directory offset) from the end records (zip64 included)."""
    f.seek(0, 2)
    end = f.tell()
    tail_start = max(0, end - (_EOCD.size + 65535))
    f.seek(tail_start)
    tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        raise SourceError(f"{path}: not a zip file (no end of central directory)")
    _, _, _, _, entries, _, offset, _ = _EOCD.unpack_from(tail, at)
    if entries == 0xFFFF or offset == 0xFFFFFFFF:
        loc = at - _ZIP64_LOCATOR.size
        if loc < 0 or tail[loc:loc + 4] != b"PK\x06\x07":
            raise SourceError(f"{path}: damaged zip64 end records")
        _, _, eocd64, _ = _ZIP64_LOCATOR.unpack_from(tail, loc)
        f.seek(eocd64)
        raw = f.read(_ZIP64_EOCD.size)
        if len(raw) < _ZIP64_EOCD.size or raw[:4] != b"PK\x06\x06":
            raise SourceError(f"{path}: damaged zip64 end records")
        values = _ZIP64_EOCD.unpack(raw)
        entries, offset = values[7], values[9]
    return entries, offset


def _members(f: IO[bytes], path: Path, count: int, offset: int) -> Iterator[_Member]:
    """The central directory's entries, read one at a time from `offset`."""
    position = offset
    for _ in range(count):
        f.seek(position)
        raw = f.read(_CENTRAL.size)
        if len(raw) < _CENTRAL.size or raw[:4] != b"PK\x01\x02":
            raise SourceError(f"{path}: damaged central directory")
        fields = _CENTRAL.unpack(raw)
        flags, method, crc = fields[5], fields[6], fields[9]
        compressed, size = fields[10], fields[11]
        name_len, extra_len, comment_len, local = fields[12], fields[13], fields[14], fields[18]
        name = f.read(name_len).decode("utf-8" if flags & 0x800 else "cp437", "replace")
        extra = f.read(extra_len)
        position += _CENTRAL.size + name_len + extra_len + comment_len
        if 0xFFFFFFFF in (compressed, size, local):
            size, compressed, local = _zip64_sizes(extra, size, compressed, local)
        yield _Member(name, flags, method, crc, compressed, size, local)


def _zip64_sizes(extra: bytes, size: int, compressed: int, local: int) -> tuple[int, int, int]:
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, at)
        if tag == 1:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, at + 4))
            if size == 0xFFFFFFFF:
                size = next(values, size)
            if compressed == 0xFFFFFFFF:
                compressed = next(values, compressed)
            if local == 0xFFFFFFFF:
                local = next(values, local)
            break
        at += 4 + length
    return size, compressed, local


def _refusal(m: _Member) -> str | None:
    if m.flags & 0x1:
        return "encrypted"
    if m.method not in (0, 8):
        return f"compression method {m.method} is not supported"
    if m.size > MAX_MEMBER_BYTES:
        return f"{m.size} bytes uncompressed, more than {MAX_MEMBER_BYTES}"
    if m.size > MAX_RATIO * max(m.compressed, 1):
        return f"compression ratio over {MAX_RATIO}x ({m.compressed} -> {m.size} bytes)"
    return None


def _inflate(f: IO[bytes], m: _Member) -> bytes | str:
    """The member's bytes, or why it was refused: the caps hold on the bytes actually produced,
    whatever the headers claim."""
    f.seek(m.offset)
    raw = f.read(_LOCAL.size)
    if len(raw) < _LOCAL.size or raw[:4] != b"PK\x03\x04":
        return "damaged local header"
    fields = _LOCAL.unpack(raw)
    f.seek(m.offset + _LOCAL.size + fields[10] + fields[11])
    budget = min(MAX_MEMBER_BYTES, MAX_RATIO * max(m.compressed, 1))
    inflater = zlib.decompressobj(-15) if m.method == 8 else None
    out: list[bytes] = []
    produced = 0
    left = m.compressed
    while left > 0:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            return "truncated member"
        left -= len(chunk)
        while chunk:
            if inflater is None:
                piece, chunk = chunk[:budget - produced + 1], b""
            else:
                try:
                    piece = inflater.decompress(chunk, budget - produced + 1)
                except zlib.error as exc:
                    return f"corrupt data: {exc}"
                chunk = inflater.unconsumed_tail
            produced += len(piece)
            if produced > budget:
                return "inflates beyond its size and ratio limits"
            out.append(piece)
    data = b"".join(out)
    if len(data) != m.size or zlib.crc32(data) != m.crc:
        return "size or CRC does not match the directory"
    return data


def _iter_zip(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        f = path.open("rb")
    except OSError as exc:
        raise SourceError(f"{path}: unreadable: {exc.strerror or exc}") from None
    with f:
        count, offset = _directory(f, path)
        if count > MAX_ENTRIES:
            raise SourceError(f"{path}: {count} entries, more than {MAX_ENTRIES}")
        for member in _members(f, path, count, offset):
            if member.name.endswith("/"):
                continue
            origin = f"{path}:{member.name}"
            if not member.name.endswith(".json"):
                continue
            reason = _refusal(member)
            data = _inflate(f, member) if reason is None else reason
            if isinstance(data, str):
                yield origin, Problem(origin, f"refused: {data}")
            else:
                yield origin, _parse(origin, data)
