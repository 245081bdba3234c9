"""Java: `META-INF/maven/<group>/<artifact>/pom.properties` in jars (and in the jars nested in
wars, ears and Spring Boot jars, one level down). A jar is spooled to a temporary file (a zip
is read from its end), capped."""

from __future__ import annotations

import io
import struct
import zipfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import Package

SUFFIXES = (".jar", ".war", ".ear")
SPOOL_BYTES = 128 << 20
NESTED_BYTES = 8 << 20
MAX_ZIP_ENTRIES = 100_000


def matches(path: str) -> bool:
    """A Java archive."""
    return path.endswith(SUFFIXES)


def _entry_count(f: Any) -> int | None:
    """Entries the zip's end record declares (None: not a plain zip, or zip64)."""
    f.seek(0, io.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - 66_000))
    tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    (total,) = struct.unpack("<H", tail[at + 10:at + 12])
    return None if total == 0xFFFF else total


def _pom(text: str) -> tuple[str, str, str] | None:
    props = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            props[key.strip()] = value.strip()
    group, artifact, version = (props.get("groupId"), props.get("artifactId"),
                                props.get("version"))
    if group and artifact and version:
        return group, artifact, version
    return None


def _archive(f: Any, path: str, depth: int) -> list[Package]:
    from . import Package

    count = _entry_count(f)
    if count is None or count > MAX_ZIP_ENTRIES:
        return []
    f.seek(0)
    found: list[Package] = []
    try:
        with zipfile.ZipFile(f) as zf:
            for info in zf.infolist():
                name = info.filename
                if (name.startswith("META-INF/maven/") and name.endswith("/pom.properties")
                        and info.file_size <= 64 << 10):
                    pom = _pom(zf.read(info).decode("utf-8", "replace"))
                    if pom:
                        group, artifact, version = pom
                        found.append(Package(name=f"{group}:{artifact}", version=version,
                                             type="maven", path=path))
                elif depth == 0 and name.endswith(".jar") and info.file_size <= NESTED_BYTES:
                    found += _archive(io.BytesIO(zf.read(info)), f"{path}!/{name}", 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return found
    return found


def parse(path: str, data: Any) -> list[Package]:
    """The Maven artifacts the archive (and its nested jars) declares."""
    from ..layers import Spooled

    if not isinstance(data, Spooled):
        return []
    with open(data.path, "rb") as f:
        return _archive(f, path, 0)
