"""Python: `*.dist-info/METADATA`, `*.egg-info/PKG-INFO` and lone `*.egg-info` files."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Package


def matches(path: str) -> bool:
    """Installed distribution metadata: wheel, egg directory, or a lone `.egg-info` file (as
    Debian's python3-* packages install it)."""
    parts = path.rsplit("/", 2)
    if len(parts) < 2:
        return False
    folder, base = parts[-2], parts[-1]
    return ((folder.endswith(".dist-info") and base == "METADATA")
            or (folder.endswith(".egg-info") and base == "PKG-INFO")
            or (base.endswith(".egg-info") and "-packages" in folder))


def normalise_name(name: str) -> str:
    """The PEP 503 normal form (what purls and OSV use)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(path: str, data: bytes) -> list[Package]:
    """The distribution the metadata headers name."""
    from . import Package

    name = version = ""
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break  # the headers end; the description follows
        key, _, value = line.partition(":")
        if key == "Name" and not name:
            name = value.strip()
        elif key == "Version" and not version:
            version = value.strip()
    if not name or not version:
        return []
    return [Package(name=name, version=version, type="pypi", path=path)]
