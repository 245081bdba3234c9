"""Digests: parsing, validation and resumable hashers for the algorithms we support."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Protocol

import rehashes

from .errors import DigestInvalid

# algorithm -> (hex length, resumable hasher class)
_ALGORITHMS: dict[str, tuple[int, Any]] = {
    "sha256": (64, rehashes.PySha256),
    "sha512": (128, rehashes.PySha512),
}
DEFAULT_ALGORITHM = "sha256"
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
HASH_STATE_VERSION = "rehashes-0.3"


@dataclass(frozen=True, slots=True)
class Digest:
    """A validated content digest such as `sha256:<64 hex>`."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_digest(value: str) -> Digest:
    """Parse and validate a digest string; raise DIGEST_INVALID for anything malformed."""
    m = _DIGEST_RE.fullmatch(value or "")
    if not m:
        raise DigestInvalid(f"invalid digest format: {value[:200]!r}")
    algorithm, encoded = m.group(1), m.group(2)
    spec = _ALGORITHMS.get(algorithm)
    if spec is None:
        raise DigestInvalid(f"unsupported digest algorithm: {algorithm[:32]!r}")
    if len(encoded) != spec[0] or not re.fullmatch(r"[a-f0-9]+", encoded):
        raise DigestInvalid(f"invalid {algorithm} digest: {value[:200]!r}")
    return Digest(algorithm, encoded)


def is_digest(value: str) -> bool:
    """True when `value` looks like a digest (contains ':'), whether or not it is valid."""
    return ":" in value


def check_algorithm(algorithm: str) -> str:
    """Validate an algorithm name given by a client."""
    if algorithm not in _ALGORITHMS:
        raise DigestInvalid(f"unsupported digest algorithm: {algorithm[:32]!r}")
    return algorithm


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def finalize(self) -> str: ...
    def serialize(self) -> bytes: ...


def new_hasher(algorithm: str = DEFAULT_ALGORITHM) -> Hasher:
    """A fresh resumable hasher."""
    return _ALGORITHMS[check_algorithm(algorithm)][1]()


def restore_hasher(algorithm: str, state: bytes) -> Hasher:
    """A hasher resumed from `serialize()` output, possibly written by another process."""
    return _ALGORITHMS[check_algorithm(algorithm)][1].deserialize(state)


def digest_bytes(data: bytes, algorithm: str = DEFAULT_ALGORITHM) -> Digest:
    """The digest of an in-memory byte string (manifests only; blobs are streamed)."""
    return Digest(algorithm, hashlib.new(check_algorithm(algorithm), data).hexdigest())
