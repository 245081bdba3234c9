"""What an upstream registry answers: typed errors, credentials and descriptors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class UpstreamError(Exception):
    """An upstream registry refused or failed a request (status 0: it could not be reached)."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None):
        super().__init__(f"upstream answered {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class UpstreamDigestMismatch(UpstreamError):
    """The upstream sent content whose digest is not the one promised or asked for."""

    def __init__(self, expected: str, actual: str, status: int = 200) -> None:
        super().__init__(status, "DIGEST_INVALID", f"expected {expected}, received {actual}")
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class Basic:
    """A username and password (or personal access token used as one)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Token:
    """A pre-issued bearer token, sent as is to the registry (no token service round trip)."""

    token: str = field(repr=False)


Credentials = Basic | Token


class ManifestInfo(NamedTuple):
    """A manifest as a HEAD describes it."""

    digest: str
    media_type: str
    size: int


class Manifest(NamedTuple):
    """A manifest's digest (verified), media type and exact bytes."""

    digest: str
    media_type: str
    content: bytes


class BlobInfo(NamedTuple):
    """A blob as a HEAD describes it."""

    digest: str
    size: int
