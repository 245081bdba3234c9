"""rpm: the SQLite rpmdb (`var/lib/rpm/rpmdb.sqlite`; `usr/lib/sysimage/rpm/` on newer
Fedora / SUSE). Older BerkeleyDB (`Packages`) and NDB (`Packages.db`) databases are not read.

The database is copied to a temporary file (SQLite opens files, not streams) and each row of
its `Packages` table is an rpm header blob: an index of (tag, type, offset, count) entries over
a data store, parsed here without rpm itself.
"""

from __future__ import annotations

import sqlite3
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..layers import Spooled
    from . import Package

PATHS = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
SPOOL_BYTES = 256 << 20  # larger databases are skipped
MAX_HEADER_ENTRIES = 100_000

NAME, VERSION, RELEASE, EPOCH, ARCH, SOURCERPM = 1000, 1001, 1002, 1003, 1022, 1044
INT32, STRING, I18NSTRING = 4, 6, 9
WANTED = {NAME, VERSION, RELEASE, EPOCH, ARCH, SOURCERPM}


def matches(path: str) -> bool:
    """A SQLite rpm database."""
    return path in PATHS


def header_fields(blob: bytes) -> dict[int, str | int]:
    """The tags we use from one rpm header blob (ValueError if it is malformed)."""
    if len(blob) < 8:
        raise ValueError("short rpm header")
    count, store_len = struct.unpack(">II", blob[:8])
    if count > MAX_HEADER_ENTRIES or 8 + 16 * count + store_len > len(blob):
        raise ValueError("rpm header sizes exceed the blob")
    store = blob[8 + 16 * count:8 + 16 * count + store_len]
    found: dict[int, str | int] = {}
    for i in range(count):
        tag, kind, offset, n = struct.unpack(">IIII", blob[8 + 16 * i:24 + 16 * i])
        if tag not in WANTED or offset >= len(store):
            continue
        if kind == INT32 and n >= 1 and offset + 4 <= len(store):
            found[tag] = struct.unpack(">I", store[offset:offset + 4])[0]
        elif kind in (STRING, I18NSTRING):
            end = store.find(b"\0", offset)
            found[tag] = store[offset:end if end >= 0 else len(store)].decode("utf-8", "replace")
    return found


def source_name(source_rpm: str) -> tuple[str, str]:
    """`openssl-3.0.7-24.el9.src.rpm` → ("openssl", "3.0.7-24.el9")."""
    stem = source_rpm.removesuffix(".rpm").removesuffix(".src").removesuffix(".nosrc")
    parts = stem.rsplit("-", 2)
    if len(parts) < 3:
        return stem, ""
    return parts[0], f"{parts[1]}-{parts[2]}"


def parse(path: str, data: bytes | Spooled) -> list[Package]:
    """The packages of the database (none if it is not one)."""
    from ..layers import Spooled
    from . import Package

    if not isinstance(data, Spooled):
        return []
    try:
        db = sqlite3.connect(f"file:{data.path}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return []
    found = []
    try:
        for (blob,) in db.execute("SELECT blob FROM Packages"):
            try:
                f = header_fields(bytes(blob))
            except ValueError:
                continue
            name, version, release = f.get(NAME), f.get(VERSION), f.get(RELEASE)
            if not isinstance(name, str) or not isinstance(version, str) or name == "gpg-pubkey":
                continue  # imported signing keys are rows too
            full = f"{version}-{release}" if isinstance(release, str) and release else version
            epoch = str(f[EPOCH]) if isinstance(f.get(EPOCH), int) else ""
            src = f.get(SOURCERPM)
            src_name, src_version = source_name(src) if isinstance(src, str) else (name, full)
            found.append(Package(name=name, version=full, type="rpm", path=path,
                                 arch=str(f.get(ARCH, "")), epoch=epoch, source_name=src_name,
                                 source_version=src_version))
    except sqlite3.Error:
        return found
    finally:
        db.close()
    return found
