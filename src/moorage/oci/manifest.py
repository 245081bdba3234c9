"""Manifest parsing: validate a pushed manifest and extract what the registry indexes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import mediatypes as mt
from .digest import Digest, parse_digest
from .errors import DigestInvalid, ManifestInvalid

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor: what a manifest points at."""

    media_type: str
    digest: Digest
    size: int

    @property
    def non_distributable(self) -> bool:
        return mt.is_non_distributable(self.media_type)


@dataclass(slots=True)
class ParsedManifest:
    """What the registry needs to know about a manifest it stores byte for byte."""

    media_type: str
    blobs: list[Descriptor] = field(default_factory=list)
    children: list[Descriptor] = field(default_factory=list)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise ManifestInvalid(f"{where} is not a descriptor object")
    media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestInvalid(f"{where} has no mediaType")
    if not isinstance(digest, str):
        raise ManifestInvalid(f"{where} has no digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where} has no valid size")
    try:
        parsed = parse_digest(digest)
    except DigestInvalid as exc:
        raise ManifestInvalid(f"{where}: {exc.message}") from None
    return Descriptor(media_type, parsed, size)


def _descriptor_list(raw: Any, where: str) -> list[Descriptor]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ManifestInvalid(f"{where} is not a list")
    return [_descriptor(item, f"{where}[{i}]") for i, item in enumerate(raw)]


def _media_type(body: dict[str, Any], content_type: str | None) -> str:
    declared = body.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType must be a string")
    header = (content_type or "").split(";", 1)[0].strip()
    if header in ("", "application/json", "application/octet-stream"):
        header = ""
    if declared and header and declared != header:
        raise ManifestInvalid(
            f"Content-Type {header!r} does not match the manifest's mediaType {declared!r}"
        )
    media_type = header or declared
    if not media_type:
        media_type = mt.OCI_INDEX if "manifests" in body else mt.OCI_MANIFEST
    return media_type


def parse_manifest(data: bytes, content_type: str | None) -> ParsedManifest:
    """Validate manifest bytes; raise MANIFEST_INVALID with a reason if they are not one."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestInvalid("manifest too large")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ManifestInvalid("manifest is not a JSON object")
    media_type = _media_type(body, content_type)
    if media_type in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED):
        raise ManifestInvalid("Docker schema 1 manifests are not accepted; push schema 2 or OCI")
    if body.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    artifact_type = body.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid("artifactType must be a string")
    annotations = body.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise ManifestInvalid("annotations must be an object")
    subject = _descriptor(body["subject"], "subject") if body.get("subject") is not None else None
    parsed = ParsedManifest(
        media_type=media_type,
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations,
    )
    if media_type in mt.INDEX_TYPES or ("manifests" in body and "config" not in body):
        parsed.children = _descriptor_list(body.get("manifests"), "manifests")
    else:
        if "config" not in body:
            raise ManifestInvalid("image manifest has no config")
        config = _descriptor(body["config"], "config")
        parsed.blobs = [config, *_descriptor_list(body.get("layers"), "layers")]
        if parsed.artifact_type is None and media_type == mt.OCI_MANIFEST:
            parsed.artifact_type = config.media_type
    return parsed
