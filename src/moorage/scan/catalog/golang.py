"""Go binaries: the module build info (Go 1.18+ inline format) of ELF executables, found by
streaming the file through a scanner: the binary is never held or written anywhere.

The `.go.buildinfo` blob starts with `\\xff Go buildinf:`, a pointer size and a flags byte
(32-byte header); with flag 2 the Go version and the module info follow as varint-prefixed
strings. Older binaries keep pointers instead and are not read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..layers import Entry, Scan
    from . import Package

MAGIC = b"\xff Go buildinf:"
HEADER = 32
MIN_SIZE = 64 << 10  # no Go binary is smaller
MAX_INFO = 1 << 20  # module info kept at most
SENTINEL = 16  # modinfo is wrapped in 16 bytes of marker on each side


class BuildInfoScanner:
    """Looks for the build info in a streamed executable."""

    def __init__(self) -> None:
        self._head = True
        self._tail = b""
        self._info: bytearray | None = None

    def feed(self, data: bytes) -> bool:
        """See the next piece of the file; False once there is nothing more to learn."""
        if self._head:
            self._head = False
            if not data.startswith(b"\x7fELF"):
                return False
        if self._info is not None:
            self._info += data
            return len(self._info) < MAX_INFO and _parse(bytes(self._info)) is None
        window = self._tail + data
        at = window.find(MAGIC)
        if at < 0:
            self._tail = window[-(len(MAGIC) - 1):]
            return True
        self._info = bytearray(window[at:at + MAX_INFO])
        return len(self._info) < MAX_INFO and _parse(bytes(self._info)) is None

    def result(self) -> tuple[str, str] | None:
        """(Go version, module info), or None."""
        return _parse(bytes(self._info)) if self._info is not None else None


def _uvarint(data: bytes, pos: int) -> tuple[int, int] | None:
    value = shift = 0
    while pos < len(data) and shift < 64:
        b = data[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7
    return None


def _parse(blob: bytes) -> tuple[str, str] | None:
    """(version, modinfo) once the blob holds both strings; None while it is short (or the
    binary uses the older, pointer-based format)."""
    if len(blob) < HEADER or blob[14] not in (4, 8) or not blob[15] & 2:
        return None
    strings = []
    pos = HEADER
    for _ in range(2):
        got = _uvarint(blob, pos)
        if got is None:
            return None
        length, pos = got
        if pos + length > len(blob):
            return None
        strings.append(blob[pos:pos + length].decode("utf-8", "replace"))
        pos += length
    version, modinfo = strings
    if len(modinfo) >= 2 * SENTINEL + 1 and modinfo[-SENTINEL - 1] == "\n":
        modinfo = modinfo[SENTINEL:-SENTINEL]
    return version, modinfo


def wants(entry: Entry) -> Scan | None:
    """Executables big enough to be Go binaries, streamed through a BuildInfoScanner."""
    from ..layers import Scan

    if entry.mode & 0o111 and entry.size >= MIN_SIZE:
        return Scan(BuildInfoScanner)
    return None


def matches(path: str) -> bool:
    """Go binaries are found by content (see `wants`), not by name."""
    return False


def parse(path: str, data: Any) -> list[Package]:
    """The Go toolchain (`stdlib`), the main module and its dependencies."""
    from . import Package

    if not isinstance(data, tuple):
        return []
    version, modinfo = data
    found: list[Package] = []
    if version.startswith("go"):
        found.append(Package(name="stdlib", version=version[2:].split()[0], type="golang",
                             path=path))
    for line in modinfo.splitlines():
        parts = line.split("\t")
        if parts[0] in ("mod", "dep") and len(parts) >= 3:
            found.append(Package(name=parts[1], version=parts[2], type="golang", path=path))
        elif parts[0] == "=>" and len(parts) >= 3 and found and found[-1].type == "golang":
            last = found.pop()  # a replaced module: what is built in is the replacement
            found.append(Package(name=parts[1], version=parts[2], type="golang", path=path,
                                 source_name=last.name, source_version=last.version))
    return found
