"""The CBOR (RFC 8949) a COSE_Sign1 envelope needs: decode definite-length items, encode the
Sig_structure. Small on purpose: no indefinite lengths, bounded depth and sizes."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 16
MAX_ITEMS = 10_000


class CborError(ValueError):
    """Bytes that are not the CBOR this module reads."""


@dataclass(frozen=True, slots=True)
class Tag:
    """A tagged item (e.g. tag 18, COSE_Sign1; tag 1, an epoch time)."""

    number: int
    value: Any


def loads(data: bytes) -> Any:
    """The one item `data` holds (CborError when it holds less, more, or something else)."""
    value, end = _item(data, 0, 0)
    if end != len(data):
        raise CborError(f"{len(data) - end} bytes after the CBOR item")
    return value


def _argument(data: bytes, pos: int, info: int) -> tuple[int, int]:
    if info < 24:
        return info, pos
    sizes = {24: 1, 25: 2, 26: 4, 27: 8}
    if info not in sizes:
        raise CborError("indefinite lengths and reserved values are not read")
    n = sizes[info]
    if pos + n > len(data):
        raise CborError("truncated CBOR")
    return int.from_bytes(data[pos:pos + n], "big"), pos + n


def _item(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise CborError("CBOR nested too deep")
    if pos >= len(data):
        raise CborError("truncated CBOR")
    major, info = data[pos] >> 5, data[pos] & 31
    if major == 7:
        return _simple(data, pos + 1, info)
    arg, pos = _argument(data, pos + 1, info)
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        if pos + arg > len(data):
            raise CborError("truncated CBOR string")
        raw = data[pos:pos + arg]
        if major == 2:
            return bytes(raw), pos + arg
        try:
            return raw.decode(), pos + arg
        except UnicodeDecodeError:
            raise CborError("a CBOR text string is not UTF-8") from None
    if major in (4, 5) and arg > MAX_ITEMS:
        raise CborError("too many CBOR items")
    if major == 4:
        out = []
        for _ in range(arg):
            value, pos = _item(data, pos, depth + 1)
            out.append(value)
        return out, pos
    if major == 5:
        mapping: dict[Any, Any] = {}
        for _ in range(arg):
            key, pos = _item(data, pos, depth + 1)
            if isinstance(key, list | dict):
                raise CborError("a CBOR map key is an array or a map")
            mapping[key], pos = _item(data, pos, depth + 1)
        return mapping, pos
    value, pos = _item(data, pos, depth + 1)  # major 6: a tag
    return Tag(arg, value), pos


def _simple(data: bytes, pos: int, info: int) -> tuple[Any, int]:
    fixed = {20: False, 21: True, 22: None, 23: None}
    if info in fixed:
        return fixed[info], pos
    formats = {25: (">e", 2), 26: (">f", 4), 27: (">d", 8)}
    if info not in formats:
        raise CborError("unsupported CBOR simple value")
    fmt, n = formats[info]
    if pos + n > len(data):
        raise CborError("truncated CBOR float")
    return struct.unpack(fmt, data[pos:pos + n])[0], pos + n


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise CborError("integer too large for CBOR")


def dumps(value: Any) -> bytes:
    """Encode ints, bytes, strings and lists (what a Sig_structure holds)."""
    if isinstance(value, bool) or value is None:
        raise CborError("only ints, bytes, strings and lists are encoded")
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(dumps(v) for v in value)
    raise CborError(f"cannot encode {type(value).__name__}")
