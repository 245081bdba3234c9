"""Trust and verification as services on the embedded default (no HTTP): who may change a
namespace's trust, who may verify, and the verifier's short cache (a pull check calls it on
every GET), including that a trust change in this process is seen at once."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from moorage.auth.identity import CLI, Principal
from moorage.bootstrap import Registry
from moorage.oci.errors import AccessDenied

from .conftest import make_registry
from .content import OCI_CONFIG, OCI_MANIFEST, digest_of, push, push_blob, push_image

PASSWORD_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("pw-123456")
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


@pytest.fixture
def secured(tmp_path: Path):  # type: ignore[no-untyped-def]
    built = make_registry(tmp_path / "registry", auth=True)
    built.admin.add_namespace(CLI, "ml")
    yield built
    built.close()


def user(registry: Registry, name: str, role: str | None = None) -> Principal:
    with registry.database.write() as uow:
        assert uow.access.create_user(name, PASSWORD_HASH, False)
    if role:
        registry.admin.set_member(CLI, "ml", name, role)
    registry.authorizer.forget()
    return registry.auth.principal_from_claims("user", name)


def pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def push_cosign(registry: Registry, repository: str, digest: str,
                key: ec.EllipticCurvePrivateKey) -> str:
    """A cosign `.sig` manifest for `digest`, pushed through the services."""
    payload = json.dumps({"critical": {"identity": {"docker-reference": repository},
                                       "image": {"docker-manifest-digest": digest},
                                       "type": "cosign container image signature"},
                          "optional": None}).encode()
    config = b"{}"
    push_blob(registry, repository, payload)
    push_blob(registry, repository, config)
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": SIMPLE_SIGNING, "digest": digest_of(payload),
                    "size": len(payload),
                    "annotations": {"dev.cosignproject.cosign/signature": signature}}],
    }).encode()
    push(registry, repository, digest.replace(":", "-") + ".sig", manifest)
    return digest_of(manifest)


def test_only_namespace_admins_change_or_list_its_trust(secured: Registry) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    developer = user(secured, "dev", "developer")
    owner = user(secured, "owner", "admin")
    stranger = user(secured, "stranger")

    for who in (developer, stranger):
        with pytest.raises(AccessDenied):
            secured.trust.add(who, "ml", "release", pem(key))
        with pytest.raises(AccessDenied):
            secured.trust.list(who, "ml")
    entry = secured.trust.add(owner, "ml", "release", pem(key))
    assert (entry["name"], entry["algorithm"], entry["created_by"]) == (
        "release", "ecdsa-p256", "owner")
    with pytest.raises(AccessDenied):
        secured.trust.remove(developer, "ml", "release")
    assert secured.trust.list(developer) == []  # the all-namespaces list shows only its own
    assert [e["name"] for e in secured.trust.list(CLI)] == ["release"]
    last = secured.outbox.since(0)[-1]
    assert (last["type"], last["actor"], last["payload"]["action"],
            last["payload"]["detail"]["name"]) == ("PolicyChanged", "owner", "trust.add", "release")
    secured.trust.remove(owner, "ml", "release")
    assert secured.trust.list(CLI, "ml") == []


def test_verify_needs_pull_permission(secured: Registry) -> None:
    digest, _ = push_image(secured, "ml/model", "v1")
    reader = user(secured, "reader", "reader")
    stranger = user(secured, "stranger")

    with pytest.raises(AccessDenied):
        secured.signatures.verify(stranger, "ml/model:v1")
    result = secured.signatures.verify(reader, "ml/model:v1")
    assert (result.digest, result.verified, result.signatures) == (digest, False, ())


def test_results_are_cached_briefly_and_trust_changes_are_seen_at_once(
        registry: Registry) -> None:
    now = [1000.0]
    verifier = registry.verifier
    verifier.clock = lambda: now[0]
    key = ec.generate_private_key(ec.SECP256R1())
    digest, _ = push_image(registry, "ml/model", "v1")
    registry.trust.add(CLI, "ml", "release", pem(key))
    assert verifier.verify("ml/model", digest).signatures == ()

    push_cosign(registry, "ml/model", digest, key)
    # Within the TTL the cached "no signatures" stands (a pull check's cost stays flat)...
    assert verifier.verify("ml/model", digest).signatures == ()
    now[0] += verifier.ttl + 1
    # ...and after it the new signature is found and verified.
    assert verifier.verify("ml/model", digest).verified_by() == ["release"]

    registry.trust.remove(CLI, "ml", "release")  # this process forgets at once
    after = verifier.verify("ml/model", digest)
    assert (after.verified, after.trusted) == (False, ())
    assert "trusts no key, root or identity" in after.summary()
