"""Which repositories and tags a rule matches: comma-separated globs, `*` within one path
segment, `**` across segments, `?` one character."""

from __future__ import annotations

from ..globs import glob_regex as _compile


def patterns(text: str | None) -> list[str]:
    """The globs of a comma-separated list (empty for None)."""
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def matches(text: str | None, name: str) -> bool:
    """Whether `name` matches any glob of `text`; None (no filter) matches everything."""
    if text is None:
        return True
    return any(_compile(p).fullmatch(name) for p in patterns(text))


def is_literal(pattern: str) -> bool:
    """A glob with no wildcard: a name as it is."""
    return not any(c in pattern for c in "*?")
