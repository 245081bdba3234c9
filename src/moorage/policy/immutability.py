"""Tag immutability: which rule, if any, makes a tag immutable (pure, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase

PATTERN_RE = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]{1,128}$")


def split_exceptions(raw: str | Iterable[str] | None) -> list[str]:
    """Exceptions as a list, from a comma-separated string or a list."""
    if raw is None:
        return []
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return [e.strip() for e in items if e and e.strip()]


def validate_pattern(pattern: str) -> str:
    """A tag glob (`v*`, `release-*`, `1.?`); ValueError otherwise."""
    if not PATTERN_RE.fullmatch(pattern):
        raise ValueError(f"invalid tag pattern {pattern!r}: use tag characters and * ? [ ]")
    return pattern


def matching_rule(tag: str, rules: Iterable[tuple[str, str]]) -> str | None:
    """The first (pattern) of `rules` that makes `tag` immutable, or None."""
    for pattern, exceptions in rules:
        if fnmatchcase(tag, pattern) and not any(
            fnmatchcase(tag, e) for e in split_exceptions(exceptions)
        ):
            return pattern
    return None


def denial_message(tag: str, pattern: str, namespace: str, action: str) -> str:
    """What a client sees when it tries to move or delete an immutable tag."""
    return (
        f"tag {tag!r} is immutable (rule {pattern!r} of namespace {namespace!r}); "
        f"it cannot be {action}"
    )
