"""safetensors headers, read with two bounded reads (the 8-byte length, then the JSON): never
the weights. Each tensor's offset is where its bytes start in the blob."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

MAX_HEADER_BYTES = 100 << 20
Reader = Callable[[int, int], bytes]  # (offset, length) -> exactly those bytes


class HeaderInvalid(ValueError):
    """The bytes are not a safetensors header we can trust."""


def read_tensors(read: Reader, start: int, size: int) -> list[dict[str, Any]]:
    """The tensors of the safetensors file at `start` (of `size` bytes) in a blob: name, dtype,
    shape, blob offset and length, in offset order."""
    if size < 8:
        raise HeaderInvalid(f"{size} bytes is too short for a safetensors file")
    (length,) = struct.unpack("<Q", read(start, 8))
    if length > MAX_HEADER_BYTES or length > size - 8:
        raise HeaderInvalid(f"header length {length} exceeds "
                            f"{min(MAX_HEADER_BYTES, size - 8)} bytes")
    raw = read(start + 8, length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HeaderInvalid(f"the header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise HeaderInvalid("the header is not a JSON object")
    data_start = start + 8 + length
    data_size = size - 8 - length
    tensors = []
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(spec, dict):
            raise HeaderInvalid(f"tensor {name!r} is not an object")
        dtype, shape, offsets = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
        if not isinstance(dtype, str) or not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise HeaderInvalid(f"tensor {name!r} has no valid dtype and shape")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise HeaderInvalid(f"tensor {name!r} has data_offsets outside the file")
        tensors.append({"name": name, "dtype": dtype, "shape": shape,
                        "blob_offset": data_start + offsets[0],
                        "length": offsets[1] - offsets[0]})
    tensors.sort(key=lambda t: (t["blob_offset"], t["name"]))
    return tensors

