"""Catalogue an image: stack its layers (whiteouts honoured) and list the packages of the
final filesystem, each with the layer that put it there."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from . import catalog
from .catalog import OsInfo, Package
from .layers import (
    Budget,
    Entry,
    Filesystem,
    LayerError,
    Limits,
    ScanLimitExceeded,
    Spooled,
    iter_layer,
    stack_layer,
)

# Layers we read; others (e.g. foreign / non-distributable ones we do not hold) are skipped.
NON_DISTRIBUTABLE = ("nondistributable", "foreign")
ENCRYPTED = "+encrypted"


class Unsupported(Exception):
    """The image cannot be catalogued honestly (e.g. an encrypted layer)."""


@dataclass
class Catalogue:
    """What a scan found: packages of the final filesystem, the OS, and skipped layers."""

    packages: list[Package]
    os: OsInfo | None
    layers: list[str]
    skipped: list[dict[str, str]] = field(default_factory=list)


def catalogue(layers: list[dict[str, Any]], open_blob: Callable[[str], Iterable[bytes] | None],
              limits: Limits) -> Catalogue:
    """Read each layer descriptor's blob (`open_blob(digest)`, None: not held here) bottom to
    top and catalogue the result; a layer that is not a readable tar is skipped (and listed).
    Raises ScanLimitExceeded or Unsupported."""
    fs = Filesystem()
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

        def parse(entry: Entry, data: bytes | Spooled, layer: str = digest) -> Any:
            found = catalog.parse(entry.path, data)
            if isinstance(found, list):
                return [replace(p, layer=layer) for p in found]
            return found

        try:
            stack_layer(fs, iter_layer(chunks, budget, catalog.wants), parse)
        except ScanLimitExceeded:
            raise
        except LayerError as exc:
            # Not a tar (or a damaged one): nothing of it was applied; the SBOM says so.
            skipped.append({"digest": digest, "reason": str(exc)})
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
