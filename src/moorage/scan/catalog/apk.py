"""apk: `lib/apk/db/installed` (Alpine, Wolfi), with the origin (source) package."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Package

INSTALLED = "lib/apk/db/installed"


def matches(path: str) -> bool:
    """The apk installed database."""
    return path == INSTALLED


def parse(path: str, data: bytes) -> list[Package]:
    """One package per blank-line-separated record of `K:value` lines."""
    from . import Package

    found = []
    record: dict[str, str] = {}
    for line in [*data.decode("utf-8", "replace").splitlines(), ""]:
        if not line.strip():
            name, version = record.get("P"), record.get("V")
            if name and version:
                found.append(Package(name=name, version=version, type="apk", path=path,
                                     arch=record.get("A", ""),
                                     source_name=record.get("o", name),
                                     source_version=version))
            record = {}
        elif len(line) > 1 and line[1] == ":":
            record.setdefault(line[0], line[2:].strip())
    return found
