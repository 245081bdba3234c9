"""RFC 822-style stanzas (dpkg status, apk-style `K:value` is in apk.py)."""

from __future__ import annotations

from collections.abc import Iterator


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """Each blank-line-separated stanza of `Field: value` lines (continuations folded)."""
    fields: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, None
        elif line[0] in " \t":
            if last is not None:
                fields[last] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip()
            fields.setdefault(last, value.strip())
    if fields:
        yield fields
