"""ReferrerService on the embedded default: the referrers index a push builds, and its filter."""

from __future__ import annotations

import asyncio
import json
import uuid

from moorage.bootstrap import Registry
from moorage.oci.digest import parse_digest

from .content import OCI_MANIFEST, digest_of, push, push_blob, push_image

REPO = "team/app"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
SIGNATURE = "application/vnd.example.signature"
SBOM = "application/vnd.example.sbom"


def push_artifact(registry: Registry, subject: str, artifact_type: str) -> str:
    """Push an artifact manifest naming `subject`; its digest."""
    layer = uuid.uuid4().bytes * 4
    push_blob(registry, REPO, b"{}")
    push_blob(registry, REPO, layer)
    content = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_CONFIG, "digest": digest_of(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": digest_of(layer),
                    "size": len(layer)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
    }).encode()
    digest = digest_of(content)
    push(registry, REPO, parse_digest(digest), content)
    return digest


def listed(registry: Registry, subject: str, artifact_type: str | None = None,
           repository: str = REPO) -> list[tuple[str, str | None]]:
    page = registry.referrers.list(repository, parse_digest(subject), artifact_type, None, 100)
    assert page.next_last is None
    return [(d["digest"], d.get("artifactType")) for d in page.descriptors]


def test_referrers_of_a_subject_are_listed_in_digest_order(registry: Registry) -> None:
    subject, _ = push_image(registry, REPO, "v1")
    other, _ = push_image(registry, REPO, "v2")
    signature = push_artifact(registry, subject, SIGNATURE)
    sbom = push_artifact(registry, subject, SBOM)
    push_artifact(registry, other, SIGNATURE)
    assert listed(registry, subject) == sorted([(signature, SIGNATURE), (sbom, SBOM)])
    assert listed(registry, subject, repository="team/elsewhere") == []


def test_referrers_are_filtered_by_artifact_type(registry: Registry) -> None:
    subject, _ = push_image(registry, REPO, "v1")
    signatures = sorted(push_artifact(registry, subject, SIGNATURE) for _ in range(2))
    push_artifact(registry, subject, SBOM)
    assert listed(registry, subject, SIGNATURE) == [(d, SIGNATURE) for d in signatures]
    assert listed(registry, subject, "application/vnd.example.none") == []


def test_referrers_outlive_their_deleted_subject(registry: Registry) -> None:
    subject, _ = push_image(registry, REPO, "v1")
    signature = push_artifact(registry, subject, SIGNATURE)
    asyncio.run(registry.manifests.delete(REPO, parse_digest(subject)))
    assert listed(registry, subject) == [(signature, SIGNATURE)]
    # Deleting the referrer itself is what removes it from the index.
    asyncio.run(registry.manifests.delete(REPO, parse_digest(signature)))
    assert listed(registry, subject) == []
