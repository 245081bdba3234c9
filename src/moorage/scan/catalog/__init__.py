"""Package catalogers: each module recognises the files it reads and turns one into packages.

A cataloger is a module with `matches(path) -> bool` and `parse(path, data) -> list[Package]`
(data: the member's bytes, or a Spooled temporary file when the module sets SPOOL_BYTES);
`etc/os-release` is read by `osrelease` the same way and gives the distribution the purls of
OS packages name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from ..layers import Entry, Scan, Spool
from . import apk, dpkg, golang, java, npm, osrelease, python, rpm

CATALOGERS: tuple[Any, ...] = (dpkg, apk, python, npm, rpm, java)


@dataclass(frozen=True, slots=True)
class Package:
    """One installed package as found in the image."""

    name: str
    version: str
    type: str  # deb, apk, pypi, npm, rpm, maven, golang
    path: str = ""
    layer: str = ""
    arch: str = ""
    source_name: str = ""
    source_version: str = ""
    epoch: str = ""
    purl: str = ""


@dataclass(frozen=True, slots=True)
class OsInfo:
    """The distribution of the image, from os-release."""

    id: str
    version_id: str
    name: str = ""
    version: str = ""
    ecosystem: str | None = None  # the OSV ecosystem, e.g. Debian:12


def wants(entry: Entry) -> bool | Spool | Scan:
    """Whether a cataloger (or os-release) reads this member: as bytes (True), as a temporary
    file (a Spool of at most the cataloger's SPOOL_BYTES), or streamed through a Scan."""
    path = entry.path
    if osrelease.matches(path):
        return True
    for cataloger in CATALOGERS:
        if cataloger.matches(path):
            spool = getattr(cataloger, "SPOOL_BYTES", 0)
            return Spool(spool) if spool else True
    return golang.wants(entry) or False


def parse(path: str, data: Any) -> list[Package] | OsInfo | None:
    """What the cataloger of `path` makes of its data (None: nothing)."""
    if osrelease.matches(path):
        return osrelease.parse(path, data) if isinstance(data, bytes) else None
    for cataloger in CATALOGERS:
        if cataloger.matches(path):
            found: list[Package] = cataloger.parse(path, data)
            return found or None
    if isinstance(data, tuple):  # a Go build info scan
        return golang.parse(path, data) or None
    return None


def _q(text: str) -> str:
    return quote(text, safe=".-_~+")


def purl(pkg: Package, os_info: OsInfo | None) -> str:
    """The package URL of `pkg` (distro-qualified for OS packages)."""
    qualifiers: list[tuple[str, str]] = []
    namespace = ""
    name = pkg.name
    version = pkg.version
    if pkg.type in ("deb", "apk", "rpm"):
        default = {"deb": "debian", "apk": "alpine", "rpm": "redhat"}[pkg.type]
        namespace = (os_info.id if os_info and os_info.id else default)
        namespace = {"rhel": "redhat"}.get(namespace, namespace)
        if pkg.arch:
            qualifiers.append(("arch", pkg.arch))
        if pkg.type == "rpm" and pkg.epoch:
            qualifiers.append(("epoch", pkg.epoch))
        if os_info and os_info.id:
            distro = f"{os_info.id}-{os_info.version_id}" if os_info.version_id else os_info.id
            qualifiers.append(("distro", distro))
        if pkg.type in ("deb", "rpm") and pkg.source_name and pkg.source_name != pkg.name:
            qualifiers.append(("upstream", pkg.source_name))
    elif pkg.type == "pypi":
        name = python.normalise_name(pkg.name)
    elif pkg.type == "npm" and name.startswith("@") and "/" in name:
        namespace, name = name.split("/", 1)
    elif pkg.type == "maven" and ":" in name:
        namespace, name = name.split(":", 1)
    elif pkg.type == "golang" and "/" in name:
        namespace, name = name.rsplit("/", 1)
    space = "/".join(_q(part) for part in namespace.split("/")) if namespace else ""
    head = f"pkg:{pkg.type}/" + (f"{space}/" if space else "") + _q(name)
    if version:
        head += "@" + _q(version)
    if qualifiers:
        head += "?" + "&".join(f"{k}={_q(v)}" for k, v in sorted(qualifiers))
    return head


def with_purls(packages: list[Package], os_info: OsInfo | None) -> list[Package]:
    """The packages with their purls filled in."""
    return [replace(p, purl=purl(p, os_info)) for p in packages]
