"""Type rules of the image-spec shared by manifests and descriptors (media types, maps, lists)."""

from __future__ import annotations

import re
from typing import Any

from .errors import ManifestInvalid

# RFC 6838 §4.2 restricted-name "/" restricted-name, as the image-spec's JSON schema has it.
_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
MEDIA_TYPE_RE = re.compile(rf"{_NAME}/{_NAME}")
_PLATFORM_STRINGS = ("architecture", "os")
_PLATFORM_OPTIONAL_STRINGS = ("os.version", "variant")
_PLATFORM_LISTS = ("os.features", "features")


def is_media_type(value: object) -> bool:
    """True when `value` is a string in RFC 6838 `type/subtype` form (no parameters)."""
    return isinstance(value, str) and MEDIA_TYPE_RE.fullmatch(value) is not None


def check_media_type(value: Any, where: str) -> str:
    """Return `value` if it is a media type, else raise MANIFEST_INVALID naming `where`."""
    if not isinstance(value, str):
        raise ManifestInvalid(f"{where} must be a string")
    if not is_media_type(value):
        raise ManifestInvalid(f"{where} {value[:100]!r} is not a media type (RFC 6838)")
    return value


def check_annotations(value: Any, where: str) -> dict[str, str]:
    """Annotations are a map of non-empty string keys to string values."""
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where} must be an object of strings")
    for key, item in value.items():
        if not key:
            raise ManifestInvalid(f"{where} keys must not be empty")
        if not isinstance(item, str):
            raise ManifestInvalid(f"{where}[{key[:100]!r}] must be a string")
    return value


def check_string_list(value: Any, where: str) -> list[str]:
    """A list whose every item is a string."""
    if not isinstance(value, list):
        raise ManifestInvalid(f"{where} must be a list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ManifestInvalid(f"{where}[{i}] must be a string")
    return value


def check_platform(value: Any, where: str) -> dict[str, Any]:
    """An image index platform: string os and architecture, optional typed extras."""
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where} must be an object")
    for key in _PLATFORM_STRINGS:
        if not isinstance(value.get(key), str):
            raise ManifestInvalid(f"{where}.{key} is required and must be a string")
    for key in _PLATFORM_OPTIONAL_STRINGS:
        if key in value and not isinstance(value[key], str):
            raise ManifestInvalid(f"{where}.{key} must be a string")
    for key in _PLATFORM_LISTS:
        if key in value:
            check_string_list(value[key], f"{where}.{key}")
    return value
