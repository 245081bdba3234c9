"""Repository names, tags and manifest references, per the distribution-spec grammar."""

from __future__ import annotations

import re

from .digest import Digest, parse_digest
from .errors import ManifestInvalid, NameInvalid

MAX_NAME_LENGTH = 255
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")


def validate_name(name: str) -> str:
    """Return `name` if it is a valid repository name, else raise NAME_INVALID."""
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.fullmatch(name):
        raise NameInvalid(f"invalid repository name: {name[:300]!r}")
    return name


def is_valid_tag(tag: str) -> bool:
    """True when `tag` matches the tag grammar."""
    return bool(_TAG_RE.fullmatch(tag))


def validate_tag(tag: str) -> str:
    """Return `tag` if valid, else raise MANIFEST_INVALID (the spec has no tag error code)."""
    if not is_valid_tag(tag):
        raise ManifestInvalid(f"invalid tag: {tag[:200]!r}")
    return tag


def parse_reference(reference: str) -> str | Digest:
    """A manifest reference is either a digest or a tag."""
    if ":" in reference:
        return parse_digest(reference)
    return validate_tag(reference)
