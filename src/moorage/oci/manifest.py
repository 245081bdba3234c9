"""Manifest parsing: validate a pushed manifest and extract what the registry indexes."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from . import mediatypes as mt
from . import strictjson
from .digest import Digest, digest_bytes, parse_digest
from .errors import DigestInvalid, ManifestInvalid
from .schema import check_annotations, check_media_type, check_platform, check_string_list

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_SIZE = 2**63 - 1  # descriptor sizes are int64
_IGNORED_CONTENT_TYPES = ("", "application/json", "application/octet-stream")


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
        raise ManifestInvalid(f"{where} must be a descriptor object")
    media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if media_type is None:
        raise ManifestInvalid(f"{where}.mediaType is required")
    check_media_type(media_type, f"{where}.mediaType")
    if not isinstance(digest, str):
        raise ManifestInvalid(f"{where}.digest is required and must be a string")
    if type(size) is not int or not 0 <= size <= MAX_SIZE:
        raise ManifestInvalid(f"{where}.size must be a non-negative integer (int64)")
    try:
        parsed = parse_digest(digest)
    except DigestInvalid as exc:
        raise ManifestInvalid(f"{where}.digest: {exc.message}") from None
    if "urls" in raw:
        check_string_list(raw["urls"], f"{where}.urls")
    if "annotations" in raw:
        check_annotations(raw["annotations"], f"{where}.annotations")
    if "artifactType" in raw:
        check_media_type(raw["artifactType"], f"{where}.artifactType")
    if "platform" in raw:
        check_platform(raw["platform"], f"{where}.platform")
    if "data" in raw:
        _check_data(raw["data"], parsed, size, f"{where}.data")
    return Descriptor(media_type, parsed, size)


def _check_data(data: Any, digest: Digest, size: int, where: str) -> None:
    if not isinstance(data, str):
        raise ManifestInvalid(f"{where} must be a base64 string")
    try:
        decoded = base64.b64decode(data.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ManifestInvalid(f"{where} is not valid base64 (RFC 4648)") from None
    # The spec: the decoded data MUST be identical to the referenced content.
    if len(decoded) != size or digest_bytes(decoded, digest.algorithm) != digest:
        raise ManifestInvalid(f"{where} does not match the descriptor's digest and size")


def _descriptor_list(body: dict[str, Any], key: str) -> list[Descriptor]:
    if key not in body:
        raise ManifestInvalid(f"{key} is required")
    raw = body[key]
    if not isinstance(raw, list):
        raise ManifestInvalid(f"{key} must be a list of descriptors")
    return [_descriptor(item, f"{key}[{i}]") for i, item in enumerate(raw)]


def _media_type(body: dict[str, Any], content_type: str | None) -> str:
    declared = body.get("mediaType")
    if declared is not None:
        check_media_type(declared, "mediaType")
    header = (content_type or "").split(";", 1)[0].strip()
    if header in _IGNORED_CONTENT_TYPES:
        header = ""
    else:
        check_media_type(header, "Content-Type")
    if declared and header and declared != header:
        raise ManifestInvalid(
            f"Content-Type {header!r} does not match the manifest's mediaType {declared!r}"
        )
    media_type = header or declared
    if not media_type:
        media_type = mt.OCI_INDEX if "manifests" in body else mt.OCI_MANIFEST
    return media_type


def _is_index(media_type: str, body: dict[str, Any]) -> bool:
    if media_type in mt.INDEX_TYPES:
        return True
    if media_type in mt.IMAGE_TYPES:
        return False
    return "manifests" in body and "config" not in body  # an unknown type: judge by shape


def parse_manifest(data: bytes, content_type: str | None) -> ParsedManifest:
    """Validate manifest bytes; raise MANIFEST_INVALID with a reason if they are not one."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestInvalid("manifest too large")
    try:
        body = strictjson.loads(data)
    except strictjson.JsonInvalid as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc.message}") from None
    if not isinstance(body, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    media_type = _media_type(body, content_type)
    if media_type in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED):
        raise ManifestInvalid("Docker schema 1 manifests are not accepted; push schema 2 or OCI")
    version = body.get("schemaVersion")
    if type(version) is not int or version != 2:
        raise ManifestInvalid("schemaVersion must be the integer 2")
    artifact_type = body.get("artifactType")
    if "artifactType" in body:
        check_media_type(artifact_type, "artifactType")
    annotations = body.get("annotations")
    if "annotations" in body:
        check_annotations(annotations, "annotations")
    subject = _descriptor(body["subject"], "subject") if "subject" in body else None
    parsed = ParsedManifest(
        media_type=media_type,
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations,
    )
    if _is_index(media_type, body):
        # One document, one meaning: a client judging by shape must not see an image here.
        for key in ("config", "layers"):
            if key in body:
                raise ManifestInvalid(f"an image index must not have {key}")
        parsed.children = _descriptor_list(body, "manifests")
    else:
        if "manifests" in body:
            raise ManifestInvalid("an image manifest must not have manifests")
        if "config" not in body:
            raise ManifestInvalid("config is required in an image manifest")
        config = _descriptor(body["config"], "config")
        parsed.blobs = [config, *_descriptor_list(body, "layers")]
        if parsed.artifact_type is None and media_type == mt.OCI_MANIFEST:
            parsed.artifact_type = config.media_type
    return parsed
