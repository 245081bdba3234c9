"""GGUF headers (v2, v3): metadata and tensor infos read through a buffered bounded reader,
never the weights. A tensor's offset is where its bytes start in the blob."""

from __future__ import annotations

import io
import struct
from typing import Any, BinaryIO

MAX_HEADER_BYTES = 256 << 20  # tokenizer vocabularies live in the header: allow them
MAX_COUNT = 1 << 24
MAX_STRING = 16 << 20
MAGIC = b"GGUF"
_FIXED = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
          11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9
# ggml type -> (name, elements per block, bytes per block)
GGML_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
              6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34),
              9: ("Q8_1", 32, 36), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
              12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210),
              15: ("Q8_K", 256, 292), 24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4),
              27: ("I64", 1, 8), 28: ("F64", 1, 8), 30: ("BF16", 1, 2)}
KEPT_KEYS = ("general.architecture", "general.name", "general.file_type",
             "general.quantization_version", "general.alignment", "general.parameter_count",
             "general.license", "general.basename", "general.size_label")


class GgufInvalid(ValueError):
    """The bytes are not a GGUF header we can trust."""


class _Header:
    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f = f
        self.size = size

    def take(self, n: int) -> bytes:
        if self.f.tell() + n > min(self.size, MAX_HEADER_BYTES):
            raise GgufInvalid(f"the header runs past {min(self.size, MAX_HEADER_BYTES)} bytes")
        data = self.f.read(n)
        if len(data) != n:
            raise GgufInvalid("the header ends early")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def count(self, what: str) -> int:
        n = int(self.unpack("<Q"))
        if n > MAX_COUNT:
            raise GgufInvalid(f"{n} {what} is more than {MAX_COUNT}")
        return n

    def string(self) -> str:
        n = int(self.unpack("<Q"))
        if n > MAX_STRING:
            raise GgufInvalid(f"a string of {n} bytes")
        return self.take(n).decode("utf-8", "replace")

    def value(self, kind: int, keep: bool) -> Any:
        if kind in _FIXED:
            return self.unpack(_FIXED[kind])
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            item, n = int(self.unpack("<I")), self.count("array items")
            if item in _FIXED and not keep:
                width = struct.calcsize(_FIXED[item])
                self.f.seek(width * n, io.SEEK_CUR)  # skipped, never read
                if self.f.tell() > min(self.size, MAX_HEADER_BYTES):
                    raise GgufInvalid("an array runs past the header")
                return None
            values = [self.value(item, keep) for _ in range(n)]
            return values if keep else None
        raise GgufInvalid(f"unknown metadata value type {kind}")


def read_gguf(f: BinaryIO, size: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the kept general.* metadata, tensors: name, dtype, shape, blob offset, length) of the
    GGUF file that `f` reads from its start."""
    h = _Header(f, size)
    if h.take(4) != MAGIC:
        raise GgufInvalid("no GGUF magic")
    version = h.unpack("<I")
    if version not in (2, 3):
        raise GgufInvalid(f"GGUF version {version} is not 2 or 3")
    tensor_count, kv_count = h.count("tensors"), h.count("metadata keys")
    meta: dict[str, Any] = {}
    for _ in range(kv_count):
        key = h.string()
        kind = int(h.unpack("<I"))
        value = h.value(kind, key in KEPT_KEYS)
        if key in KEPT_KEYS:
            meta[key] = value
    infos = []
    for _ in range(tensor_count):
        name = h.string()
        dims = int(h.unpack("<I"))
        if dims > 8:
            raise GgufInvalid(f"tensor {name!r} has {dims} dimensions")
        shape = [int(h.unpack("<Q")) for _ in range(dims)]
        infos.append((name, shape, int(h.unpack("<I")), int(h.unpack("<Q"))))
    alignment = meta.get("general.alignment") or 32
    if not isinstance(alignment, int) or alignment <= 0:
        raise GgufInvalid(f"general.alignment {alignment!r}")
    data_start = f.tell() + (-f.tell() % alignment)
    ends = sorted({off for *_, off in infos} | {size - data_start})
    tensors = []
    for name, shape, kind, offset in infos:
        known = GGML_TYPES.get(kind)
        elements = 1
        for d in shape:
            elements *= d
        if known is not None:
            dtype, block, width = known
            length = -(-elements // block) * width
        else:  # a type newer than this table: up to the next tensor
            dtype = f"ggml-{kind}"
            length = next(e for e in ends if e > offset) - offset if offset < ends[-1] else 0
        if data_start + offset + length > size:
            raise GgufInvalid(f"tensor {name!r} runs past the end of the file")
        tensors.append({"name": name, "dtype": dtype, "shape": shape,
                        "blob_offset": data_start + offset, "length": length})
    tensors.sort(key=lambda t: (t["blob_offset"], t["name"]))
    return meta, tensors
