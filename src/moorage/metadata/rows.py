"""The rows query modules hand to services: plain frozen dataclasses, no SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UploadRow:
    id: str
    repository: str
    algorithm: str
    offset: int
    hash_state: bytes
    hash_state_version: str
    storage_handle: str
    writer_token: str | None
    writer_until: float | None


@dataclass(frozen=True, slots=True)
class BlobRow:
    digest: str
    size: int
    storage_key: str


@dataclass(frozen=True, slots=True)
class ManifestRow:
    digest: str
    media_type: str
    size: int
    content: bytes | None


@dataclass(frozen=True, slots=True)
class ReferrerRow:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict | None


@dataclass(frozen=True, slots=True)
class NewManifest:
    """A validated manifest ready to be stored."""

    digest: str
    media_type: str
    content: bytes
    artifact_type: str | None
    subject_digest: str | None
    annotations: dict | None
    blob_digests: tuple[str, ...]
    child_digests: tuple[str, ...]


class UploadBusy(Exception):
    """Another request is writing to this upload right now."""


class BytesGone(Exception):
    """The content an upload was about to record has been garbage-collected meanwhile."""


class UploadGone(Exception):
    """The upload session expired (and its storage was queued for deletion) while committing."""


def before_nul(value: str) -> str:
    """`value` cut at its first NUL: for names that hold no NUL (none can), `x > value` and
    `x > before_nul(value)` agree, and PostgreSQL refuses NUL in text parameters."""
    return value.split("\x00", 1)[0]


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    password_hash: str
    is_admin: bool
    disabled: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class RobotRow:
    id: int
    name: str
    secret_hash: str
    description: str | None
    created_by: str | None
    expires_at: float | None
    revoked: bool
    created_at: float
    permissions: dict[str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class NamespaceRow:
    name: str
    visibility: str
    robot_only_push: bool
    created_by: str | None
    created_at: float
