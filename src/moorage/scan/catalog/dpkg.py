"""dpkg: `var/lib/dpkg/status` and distroless `var/lib/dpkg/status.d/*`, with `Source:`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ._fields import stanzas

if TYPE_CHECKING:
    from . import Package

STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d/"
_SOURCE = re.compile(r"^(\S+)(?:\s+\((\S+)\))?$")


def matches(path: str) -> bool:
    """The dpkg database, or one distroless status.d file (not its .md5sums)."""
    if path == STATUS:
        return True
    return (path.startswith(STATUS_D) and "/" not in path[len(STATUS_D):]
            and not path.endswith(".md5sums") and len(path) > len(STATUS_D))


def parse(path: str, data: bytes) -> list[Package]:
    """The installed packages the file lists."""
    from . import Package

    found = []
    for f in stanzas(data.decode("utf-8", "replace")):
        name, version = f.get("Package"), f.get("Version")
        if not name or not version:
            continue
        status = f.get("Status", "install ok installed").split()
        if status and status[-1] not in ("installed", "half-configured", "triggers-awaited",
                                         "triggers-pending"):
            continue  # removed, config-files only, not installed
        source_name, source_version = name, version
        if f.get("Source"):
            m = _SOURCE.match(f["Source"].strip())
            if m:
                source_name = m.group(1)
                source_version = m.group(2) or version
        found.append(Package(name=name, version=version, type="deb", path=path,
                             arch=f.get("Architecture", ""), source_name=source_name,
                             source_version=source_version))
    return found
