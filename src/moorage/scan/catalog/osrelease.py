"""`etc/os-release` (or `usr/lib/os-release`): the distribution and its OSV ecosystem name."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import OsInfo

PATHS = ("etc/os-release", "usr/lib/os-release")

# os-release ID → OSV ecosystem prefix; Alpine's is `Alpine:v3.19` (major.minor with a v).
_ECOSYSTEMS = {"debian": "Debian", "ubuntu": "Ubuntu", "alpine": "Alpine",
               "rocky": "Rocky Linux", "almalinux": "AlmaLinux", "wolfi": "Wolfi",
               "chainguard": "Chainguard", "opensuse-leap": "openSUSE",
               "photon": "Photon OS", "mageia": "Mageia"}


def matches(path: str) -> bool:
    """An os-release file."""
    return path in PATHS


def ecosystem(os_id: str, version_id: str, version: str = "") -> str | None:
    """The OSV ecosystem of a distribution release (None: one OSV does not name)."""
    prefix = _ECOSYSTEMS.get(os_id)
    if prefix is None:
        return None
    if os_id in ("wolfi", "chainguard"):
        return prefix  # rolling: one ecosystem
    if not version_id:
        return prefix
    if os_id == "alpine":
        return f"Alpine:v{'.'.join(version_id.split('.')[:2])}"
    if os_id == "ubuntu":
        return f"Ubuntu:{version_id}:LTS" if "LTS" in version else f"Ubuntu:{version_id}"
    if os_id == "debian":
        return f"Debian:{version_id.split('.')[0]}"
    if os_id in ("rocky", "almalinux"):
        return f"{prefix}:{version_id.split('.')[0]}"
    return f"{prefix}:{version_id}"


def parse(path: str, data: bytes) -> OsInfo | None:
    """The distribution the file describes."""
    from . import OsInfo

    fields: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value.strip("\"'")]
        fields[key] = parts[0] if parts else ""
    os_id = fields.get("ID", "").lower()
    if not os_id:
        return None
    version_id = fields.get("VERSION_ID", "")
    return OsInfo(id=os_id, version_id=version_id, name=fields.get("PRETTY_NAME", os_id),
                  version=fields.get("VERSION", ""),
                  ecosystem=ecosystem(os_id, version_id, fields.get("VERSION", "")))
