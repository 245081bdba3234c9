"""npm: `node_modules/<name>/package.json` and `node_modules/@scope/<name>/package.json`, at
any depth of nesting."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Package


def matches(path: str) -> bool:
    """A package's own manifest directly inside a node_modules folder (not files of its
    tests or fixtures deeper down)."""
    parts = path.split("/")
    if len(parts) < 3 or parts[-1] != "package.json":
        return False
    if parts[-3] == "node_modules":
        return not parts[-2].startswith((".", "@"))
    return len(parts) >= 4 and parts[-4] == "node_modules" and parts[-3].startswith("@")


def parse(path: str, data: bytes) -> list[Package]:
    """The package the manifest names (none without a name and a version)."""
    from . import Package

    try:
        doc = json.loads(data)
    except ValueError:
        return []
    if not isinstance(doc, dict):
        return []
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return []
    return [Package(name=name, version=version, type="npm", path=path)]
