"""CycloneDX 1.5 JSON documents of an image's packages (plain dicts; no heavy library)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from .. import __version__
from ..times import rfc3339
from .catalog import Package
from .image import Catalogue

MEDIA_TYPE = "application/vnd.cyclonedx+json"
SPEC_VERSION = "1.5"
GENERATOR = "moorage"
# Property names (CycloneDX: namespaced by the tool that sets them).
LAYER = "moorage:layer"
PATH = "moorage:path"
PACKAGE_TYPE = "moorage:package:type"
SOURCE_NAME = "moorage:source:name"
SOURCE_VERSION = "moorage:source:version"
ECOSYSTEM = "moorage:osv:ecosystem"


def image_purl(repository: str, digest: str) -> str:
    """The purl of an image in this registry (pkg:oci, by digest)."""
    name = repository.rsplit("/", 1)[-1]
    return (f"pkg:oci/{quote(name, safe='')}@{quote(digest, safe='')}"
            f"?repository_url={quote(repository, safe='/')}")


def _props(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in pairs if v]


def component(pkg: Package, index: int) -> dict[str, Any]:
    """One library component."""
    return {
        "type": "library",
        "bom-ref": f"pkg-{index}:{pkg.purl}",
        "name": pkg.name,
        "version": pkg.version,
        "purl": pkg.purl,
        "properties": _props([(PACKAGE_TYPE, pkg.type), (LAYER, pkg.layer), (PATH, pkg.path),
                              (SOURCE_NAME, pkg.source_name),
                              (SOURCE_VERSION, pkg.source_version)]),
    }


def document(repository: str, digest: str, found: Catalogue, created: float) -> dict[str, Any]:
    """The CycloneDX document of an image (`digest` in `repository`) and what it contains."""
    components: list[dict[str, Any]] = []
    if found.os is not None:
        components.append({
            "type": "operating-system", "bom-ref": f"os:{found.os.id}",
            "name": found.os.id, "version": found.os.version_id,
            "description": found.os.name,
            "properties": _props([(ECOSYSTEM, found.os.ecosystem or "")]),
        })
    components += [component(p, i) for i, p in enumerate(found.packages)]
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(created),
            "tools": {"components": [{"type": "application", "name": GENERATOR,
                                      "version": __version__}]},
            "component": {
                "type": "container", "bom-ref": digest, "name": repository,
                "version": digest, "purl": image_purl(repository, digest),
                "hashes": [{"alg": "SHA-256", "content": digest.split(":", 1)[1]}]
                if digest.startswith("sha256:") else [],
            },
            "properties": _props([(f"moorage:skipped-layer:{s['digest']}", s["reason"])
                                  for s in found.skipped]),
        },
        "components": components,
    }


def packages_of(doc: dict[str, Any]) -> list[dict[str, str]]:
    """The library components of a CycloneDX document as flat rows (for `sbom show`)."""
    rows = []
    for comp in doc.get("components") or []:
        if not isinstance(comp, dict) or comp.get("type") == "operating-system":
            continue
        props = {p.get("name"): p.get("value") for p in comp.get("properties") or []
                 if isinstance(p, dict)}
        rows.append({"name": str(comp.get("name", "")), "version": str(comp.get("version", "")),
                     "type": str(props.get(PACKAGE_TYPE) or comp.get("type", "")),
                     "purl": str(comp.get("purl", "")), "layer": str(props.get(LAYER) or ""),
                     "source": str(props.get(SOURCE_NAME) or "")})
    return rows
