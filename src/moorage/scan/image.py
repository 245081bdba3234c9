"""Catalogue an image: stack its layers (whiteouts honoured) and list the packages of the
final filesystem, each with the layer that put it there."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from . import catalog
from .catalog import OsInfo, Package
from .layers import (
    Budget,
    Entry,
    Filesystem,
    LayerError,
    Limits,
    Scan,
    ScanLimitExceeded,
    Spool,
    Spooled,
    iter_layer,
    stack_layer,
)

# Layers we read; others (e.g. foreign / non-distributable ones we do not hold) are skipped.
NON_DISTRIBUTABLE = ("nondistributable", "foreign")
ENCRYPTED = "+encrypted"
NOT_A_TAR = "unknown magic bytes"


class Unsupported(Exception):
    """The image cannot be catalogued honestly (e.g. an encrypted layer)."""


class Inspector(Protocol):
    """Looks at every layer's files besides the catalogers (secrets, model files)."""

    def want(self, entry: Entry, catalogued: bool | Spool | Scan) -> bool | Spool | Scan:
        """What to read of a member, given what the catalogers asked for."""
        ...

    def entries(self, layer: str, stream: Iterable[tuple[Entry, Any]]
                ) -> Iterator[tuple[Entry, Any]]:
        """The layer's members, with what only the inspector asked for taken out."""
        ...

    def raw_layer(self, layer: str, desc: dict[str, Any], chunks: Iterable[bytes]) -> None:
        """A layer that is not a tar (e.g. a raw model file)."""
        ...


def is_tar_type(media_type: str) -> bool:
    """Whether a layer media type names a tar (possibly compressed) or is unknown enough to
    try one (Docker's rootfs diffs, OCI layers, or no type at all)."""
    return "tar" in media_type or not media_type


@dataclass
class Catalogue:
    """What a scan found: packages of the final filesystem, the OS, and skipped layers."""

    packages: list[Package]
    os: OsInfo | None
    layers: list[str]
    skipped: list[dict[str, str]] = field(default_factory=list)


def catalogue(layers: list[dict[str, Any]], open_blob: Callable[[str], Iterable[bytes] | None],
              limits: Limits, inspector: Inspector | None = None) -> Catalogue:
    """Read each layer descriptor's blob (`open_blob(digest)`, None: not held here) bottom to
    top and catalogue the result; a layer that is not a readable tar is skipped (and listed).
    With an `inspector`, every layer's members (a later layer's deletions notwithstanding) and
    every non-tar layer pass it too, in the same read. Raises ScanLimitExceeded or
    Unsupported."""
    fs = Filesystem()
    want = catalog.wants if inspector is None else (
        lambda entry: inspector.want(entry, catalog.wants(entry)))
    budget = Budget(limits)
    read: list[str] = []
    skipped: list[dict[str, str]] = []
    for desc in layers:
        digest, media_type = str(desc.get("digest", "")), str(desc.get("mediaType", ""))
        if ENCRYPTED in media_type:
            raise Unsupported(f"layer {digest} is encrypted ({media_type})")
        if any(word in media_type for word in NON_DISTRIBUTABLE):
            skipped.append({"digest": digest, "reason": "non-distributable layer"})
            continue
        chunks = open_blob(digest)
        if chunks is None:
            skipped.append({"digest": digest, "reason": "blob not in this registry"})
            continue
        if inspector is not None and not is_tar_type(media_type):
            inspector.raw_layer(digest, desc, chunks)
            skipped.append({"digest": digest, "reason": f"not a tar layer ({media_type})"})
            continue

        def parse(entry: Entry, data: bytes | Spooled, layer: str = digest) -> Any:
            found = catalog.parse(entry.path, data)
            if isinstance(found, list):
                return [replace(p, layer=layer) for p in found]
            return found

        entries = iter_layer(chunks, budget, want)
        if inspector is not None:
            entries = inspector.entries(digest, entries)
        try:
            stack_layer(fs, entries, parse)
        except ScanLimitExceeded:
            raise
        except LayerError as exc:
            # Not a tar (or a damaged one): nothing of it was applied; the SBOM says so.
            skipped.append({"digest": digest, "reason": str(exc)})
            if inspector is not None and NOT_A_TAR in str(exc):
                again = open_blob(digest)  # a raw file under a tar media type: look at it
                if again is not None:
                    inspector.raw_layer(digest, desc, again)
            continue
        read.append(digest)
    os_info: OsInfo | None = None
    for path in catalog.osrelease.PATHS:
        value = fs.files.get(path)
        if isinstance(value, OsInfo):
            os_info = value
            break
    packages = [p for path in sorted(fs.files) if isinstance(fs.files[path], list)
                for p in fs.files[path]]
    return Catalogue(catalog.with_purls(packages, os_info), os_info, read, skipped)
