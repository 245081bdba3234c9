"""Synthetic safetensors-format weights (a real header, random tensors) and fine-tunes of them:
the dedup tests' and benchmarks' fixture."""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Iterator

TENSOR_BYTES = 1 << 20  # one tensor: 1 MiB of float32


def _tensor(seed: int, version: int, index: int, changed: set[int], size: int) -> bytes:
    rng = random.Random(f"{seed}:{version if index in changed else 0}:{index}")
    return rng.randbytes(size)


def safetensors_parts(total_bytes: int, seed: int = 1, version: int = 0,
                      changed_share: float = 0.05, tensor_bytes: int = TENSOR_BYTES
                      ) -> Iterator[bytes]:
    """The file in parts: a header naming `total_bytes // tensor_bytes` tensors, then their
    data; `version` > 0 changes `changed_share` of the tensors (at least one: a fine-tune of
    version 0)."""
    count = max(1, total_bytes // tensor_bytes)
    rng = random.Random(f"{seed}:{version}:pick")
    n = max(1, round(count * changed_share))
    changed = set(rng.sample(range(count), n)) if version else set()
    header: dict[str, object] = {
        f"layers.{i}.weight": {"dtype": "F32", "shape": [tensor_bytes // 4],
                               "data_offsets": [i * tensor_bytes, (i + 1) * tensor_bytes]}
        for i in range(count)}
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    yield struct.pack("<Q", len(raw)) + raw
    for i in range(count):
        yield _tensor(seed, version, i, changed, tensor_bytes)


def safetensors(total_bytes: int, seed: int = 1, version: int = 0,
                changed_share: float = 0.05, tensor_bytes: int = TENSOR_BYTES) -> bytes:
    """The whole file (tests: tens of MiB; benchmarks stream `safetensors_parts`)."""
    return b"".join(safetensors_parts(total_bytes, seed, version, changed_share, tensor_bytes))
