"""Signatures through a real server: cosign tag signatures, sigstore bundle referrers and
notation JWS referrers are pushed over HTTP exactly as the tools lay them out, then
`moorage trust` and `moorage verify` decide, each failure with its reason."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from support.oci import make_image, new_tag, push_tree
from support.servers import Server, run_moorage, start_registry
from typer.testing import CliRunner

from moorage.cli import app

from .signing_fixtures import (
    BUNDLE_V01,
    attestation,
    bundle_attestation,
    bundle_referrer,
    cose_notation_referrer,
    cosign_signature,
    cosign_tag,
    keyless_bundle,
    keyless_cosign_signature,
    leaf,
    notation_referrer,
    p256,
    public_pem,
    root_ca,
    sigstore,
    slsa_statement,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    reg = start_registry(tmp_path_factory.mktemp("signatures"))
    yield reg
    reg.stop()


def _target(reg: Server) -> list[str]:
    """The CLI options that reach the server's registry (data dir, database, storage)."""
    node = reg.nodes[0] if hasattr(reg, "nodes") else reg
    target = ["--data-dir", str(node.data_dir)]
    extra = list(node.extra_args)
    for flag in ("--database", "--storage"):
        if flag in extra:
            target += [flag, extra[extra.index(flag) + 1]]
    return target


def cli(reg: Server, *args: str, code: int = 0) -> Any:
    """`moorage ARGS` in-process against the server's registry; the result, exit code checked."""
    node = reg.nodes[0] if hasattr(reg, "nodes") else reg
    result = CliRunner().invoke(app, [*args, *_target(reg)], env=node.env)
    assert result.exit_code == code, (result.exit_code, result.output)
    return result


def verify_json(reg: Server, ref: str, code: int) -> dict[str, Any]:
    return json.loads(cli(reg, "verify", ref, "--json", code=code).stdout.splitlines()[-1])


def trust_key(reg: Server, tmp_path: Path, namespace: str, name: str, private: Any) -> None:
    path = tmp_path / f"{name}.pub"
    path.write_bytes(public_pem(private))
    cli(reg, "trust", "add", namespace, "--name", name, "--key", str(path))


def trust_root(reg: Server, tmp_path: Path, namespace: str, name: str, pem: bytes) -> None:
    path = tmp_path / f"{name}.pem"
    path.write_bytes(pem)
    cli(reg, "trust", "add", namespace, "--name", name, "--certificate-chain", str(path))


def pushed_image(reg: Server) -> tuple[str, str, Any]:
    """A new namespace's repository with a tagged image: (repo, tag, manifest)."""
    repo = f"sig{uuid.uuid4().hex[:10]}/app"
    image = make_image(layers=1)
    tag = new_tag()
    push_tree(reg, repo, image, tag=tag)
    return repo, tag, image


def push_cosign(reg: Server, repo: str, image: Any, private: Any, **kw: Any) -> str:
    sig = cosign_signature(private, kw.pop("digest", image.digest), f"{reg.host}/{repo}", **kw)
    return push_tree(reg, repo, sig, tag=cosign_tag(image.digest))


def only(result: dict[str, Any]) -> dict[str, Any]:
    [check] = result["signatures"]
    return check


# -- cosign tag scheme --------------------------------------------------------------------------

def test_cosign_tag_signature_by_a_trusted_key_verifies(server, tmp_path):
    repo, tag, image = pushed_image(server)
    key = p256()
    sig_digest = push_cosign(server, repo, image, key)
    trust_key(server, tmp_path, repo.split("/")[0], "release", key)

    node = server.nodes[0] if hasattr(server, "nodes") else server
    done = run_moorage("verify", f"{repo}:{tag}", "--json", *_target(server), env=node.env)
    result = json.loads(done.stdout.splitlines()[-1])

    assert result["verified"] is True
    assert result["verified_by"] == ["release"]
    check = only(result)
    assert (check["kind"], check["manifest"], check["outcome"], check["trust_entry"]) == (
        "cosign-tag", sig_digest, "verified", "release")
    assert check["found_as"] == f"tag {cosign_tag(image.digest)}"


def test_cosign_rsa_and_ed25519_keys_verify_by_digest_reference(server, tmp_path):
    for private in (rsa.generate_private_key(public_exponent=65537, key_size=2048),
                    ed25519.Ed25519PrivateKey.generate()):
        repo, _, image = pushed_image(server)
        push_cosign(server, repo, image, private)
        trust_key(server, tmp_path, repo.split("/")[0], "ci", private)
        assert only(verify_json(server, f"{repo}@{image.digest}", 0))["trust_entry"] == "ci"


def test_cosign_signature_by_an_untrusted_key_is_refused_with_the_reason(server, tmp_path):
    repo, tag, image = pushed_image(server)
    namespace = repo.split("/")[0]
    push_cosign(server, repo, image, p256())
    trust_key(server, tmp_path, namespace, "release", p256())

    check = only(verify_json(server, f"{repo}:{tag}", 1))

    assert check["outcome"] == "no-trusted-key"
    assert f"does not verify with any key trusted for namespace {namespace} ('release')" in \
        check["message"]
    assert check["trust_entry"] is None


def test_cosign_payload_changed_after_signing_does_not_verify(server, tmp_path):
    repo, tag, image = pushed_image(server)
    key = p256()
    changed = json.dumps({"critical": {"identity": {"docker-reference": "evil.example/x"},
                                       "image": {"docker-manifest-digest": image.digest},
                                       "type": "cosign container image signature"},
                          "optional": {"who": "attacker"}}).encode()
    push_cosign(server, repo, image, key, payload=changed)
    trust_key(server, tmp_path, repo.split("/")[0], "release", key)

    check = only(verify_json(server, f"{repo}:{tag}", 1))

    # cosign's tag scheme names no key: a changed payload looks like another key's signature.
    assert check["outcome"] == "no-trusted-key"
    assert "payload was changed after signing" in check["message"]


def test_cosign_signature_of_another_digest_is_rejected(server, tmp_path):
    repo, tag, image = pushed_image(server)
    key = p256()
    other = make_image(layers=1)
    push_cosign(server, repo, image, key, digest=other.digest)  # under this image's tag
    trust_key(server, tmp_path, repo.split("/")[0], "release", key)

    check = only(verify_json(server, f"{repo}:{tag}", 1))

    assert check["outcome"] == "wrong-digest"
    assert check["message"].endswith(f"signs {other.digest}, not {image.digest}: it belongs to "
                                     f"another image; sign this one")


def test_an_unsigned_image_has_no_signatures(server, tmp_path):
    repo, tag, image = pushed_image(server)
    trust_key(server, tmp_path, repo.split("/")[0], "release", p256())

    result = verify_json(server, f"{repo}:{tag}", 1)

    assert (result["verified"], result["signatures"]) == (False, [])
    assert result["summary"] == (f"{repo}@{image.digest} has no signatures: sign it with cosign "
                                 f"or notation and push the signature to {repo}")
    text = cli(server, "verify", f"{repo}:{tag}", code=1).stdout
    assert "has no signatures" in text


def test_verify_of_a_missing_image_names_it(server):
    result = cli(server, "verify", "sigmissing/app:nope", code=1)
    assert "no manifest sigmissing/app:nope" in result.stderr


# -- sigstore bundles (OCI 1.1 referrers) -------------------------------------------------------

def test_sigstore_bundle_referrer_with_a_trusted_key_verifies(server, tmp_path):
    repo, tag, image = pushed_image(server)
    key = p256()
    referrer = push_tree(server, repo, bundle_referrer(key, image))
    trust_key(server, tmp_path, repo.split("/")[0], "release", key)

    check = only(verify_json(server, f"{repo}:{tag}", 0))

    assert (check["kind"], check["manifest"], check["outcome"], check["trust_entry"]) == (
        "sigstore-bundle", referrer, "verified", "release")


def test_sigstore_bundle_naming_a_trusted_key_but_not_verifying_is_a_bad_signature(
        server, tmp_path):
    repo, tag, image = pushed_image(server)
    key = p256()
    forged = bundle_referrer(key, make_image(layers=1),
                             digest_of_message=bytes.fromhex(image.digest.split(":")[1]))
    push_tree(server, repo, _with_subject(forged, image))
    trust_key(server, tmp_path, repo.split("/")[0], "release", key)

    check = only(verify_json(server, f"{repo}:{tag}", 1))

    assert check["outcome"] == "bad-signature"
    assert "names trusted key 'release' but does not verify with it" in check["message"]


def test_sigstore_bundle_for_another_digest_is_rejected(server, tmp_path):
    repo, tag, image = pushed_image(server)
    key = p256()
    other = make_image(layers=1)
    push_tree(server, repo, _with_subject(bundle_referrer(key, other), image))
    trust_key(server, tmp_path, repo.split("/")[0], "release", key)

    assert only(verify_json(server, f"{repo}:{tag}", 1))["outcome"] == "wrong-digest"


def _with_subject(referrer: Any, image: Any) -> Any:
    """The same referrer pointing at `image` (its signature content unchanged)."""
    from support.oci import Manifest, dumps

    doc = referrer.json
    doc["subject"] = image.descriptor()
    return Manifest(dumps(doc), referrer.media_type, blobs=referrer.blobs)


# -- notation (JWS with an x509 chain) ----------------------------------------------------------

@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    root, stranger = root_ca("Test Root"), root_ca("Other Root")
    return {"root": root, "signer": leaf(root), "ec-signer": leaf(root, "ec", ecdsa=True),
            "expired": leaf(root, "old", expired=True),
            "stranger": leaf(stranger, "stranger"),
            "tls": leaf(root, "web", usage=ExtendedKeyUsageOID.SERVER_AUTH)}


def test_notation_signature_chaining_to_a_trusted_root_verifies(server, tmp_path, pki):
    repo, tag, image = pushed_image(server)
    signer = pki["signer"]
    referrer = push_tree(server, repo, notation_referrer(signer, [signer, pki["root"]], image))
    trust_root(server, tmp_path, repo.split("/")[0], "corp-ca", pki["root"].pem)

    check = only(verify_json(server, f"{repo}:{tag}", 0))

    assert (check["kind"], check["manifest"], check["outcome"], check["trust_entry"]) == (
        "notation", referrer, "verified", "corp-ca")


def test_notation_es256_signature_whose_chain_omits_the_root_verifies(server, tmp_path, pki):
    repo, tag, image = pushed_image(server)
    signer = pki["ec-signer"]
    push_tree(server, repo, notation_referrer(signer, [signer], image))  # root not in x5c
    trust_root(server, tmp_path, repo.split("/")[0], "corp-ca", pki["root"].pem)

    assert only(verify_json(server, f"{repo}:{tag}", 0))["trust_entry"] == "corp-ca"


def test_notation_cose_signatures_verify_and_tampering_or_a_stranger_does_not(
        server, tmp_path, pki):
    ns_repo, tag, image = pushed_image(server)
    ns = ns_repo.split("/")[0]
    trust_root(server, tmp_path, ns, "corp-ca", pki["root"].pem)
    for signer in (pki["ec-signer"], pki["signer"]):  # ES256 and PS256
        referrer = push_tree(server, ns_repo, cose_notation_referrer(signer, [signer], image))
    checks = verify_json(server, f"{ns_repo}:{tag}", 0)["signatures"]
    assert sorted((c["kind"], c["outcome"], c["trust_entry"]) for c in checks) == [
        ("notation", "verified", "corp-ca")] * 2
    assert referrer in {c["manifest"] for c in checks}

    bad_repo, bad_tag, bad = pushed_image(server)
    push_tree(server, bad_repo, cose_notation_referrer(pki["ec-signer"], [pki["ec-signer"]], bad,
                                                       tamper=True))
    push_tree(server, bad_repo, cose_notation_referrer(pki["stranger"], [pki["stranger"]], bad))
    push_tree(server, bad_repo, cose_notation_referrer(pki["signer"], [pki["signer"]], bad,
                                                       expiry=time.time() - 60))
    trust_root(server, tmp_path, bad_repo.split("/")[0], "corp-ca", pki["root"].pem)
    outcomes = sorted(c["outcome"] for c in verify_json(server, f"{bad_repo}:{bad_tag}",
                                                        1)["signatures"])
    assert outcomes == ["bad-signature", "expired", "untrusted-chain"]


def test_notation_leaf_of_another_root_is_rejected(server, tmp_path, pki):
    repo, tag, image = pushed_image(server)
    push_tree(server, repo, notation_referrer(pki["stranger"], [pki["stranger"]], image))
    trust_root(server, tmp_path, repo.split("/")[0], "corp-ca", pki["root"].pem)

    check = only(verify_json(server, f"{repo}:{tag}", 1))

    assert check["outcome"] == "untrusted-chain"
    assert "does not lead to a root certificate trusted for this namespace" in check["message"]


def test_notation_leaf_not_for_code_signing_is_rejected(server, tmp_path, pki):
    repo, tag, image = pushed_image(server)
    tls = pki["tls"]
    push_tree(server, repo, notation_referrer(tls, [tls, pki["root"]], image))
    trust_root(server, tmp_path, repo.split("/")[0], "corp-ca", pki["root"].pem)

    check = only(verify_json(server, f"{repo}:{tag}", 1))

    assert check["outcome"] == "untrusted-chain"
    assert "is not for code signing" in check["message"]


def test_notation_expired_leaf_is_rejected(server, tmp_path, pki):
    repo, tag, image = pushed_image(server)
    old = pki["expired"]
    push_tree(server, repo, notation_referrer(old, [old, pki["root"]], image))
    trust_root(server, tmp_path, repo.split("/")[0], "corp-ca", pki["root"].pem)

    check = only(verify_json(server, f"{repo}:{tag}", 1))

    assert check["outcome"] == "expired"
    assert "the signing certificate O=Moorage tests,CN=old expired on" in check["message"]


def test_notation_payload_changed_after_signing_is_a_bad_signature(server, tmp_path, pki):
    repo, tag, image = pushed_image(server)
    signer = pki["signer"]
    push_tree(server, repo, notation_referrer(signer, [signer, pki["root"]], image, tamper=True))
    trust_root(server, tmp_path, repo.split("/")[0], "corp-ca", pki["root"].pem)

    check = only(verify_json(server, f"{repo}:{tag}", 1))

    assert check["outcome"] == "bad-signature"
    assert "chains to trusted root 'corp-ca' but its signature does not verify" in \
        check["message"]


def test_notation_for_another_digest_is_rejected(server, tmp_path, pki):
    repo, tag, image = pushed_image(server)
    signer = pki["signer"]
    other = make_image(layers=1)
    push_tree(server, repo, notation_referrer(signer, [signer, pki["root"]], image,
                                              target_digest=other.digest))
    trust_root(server, tmp_path, repo.split("/")[0], "corp-ca", pki["root"].pem)

    assert only(verify_json(server, f"{repo}:{tag}", 1))["outcome"] == "wrong-digest"


# -- attestations and provenance ----------------------------------------------------------------

def test_slsa_provenance_attested_with_a_trusted_key_is_shown(server, tmp_path):
    repo, tag, image = pushed_image(server)
    key = p256()
    push_cosign(server, repo, image, key)
    att = attestation(key, slsa_statement(image.digest))
    push_tree(server, repo, att, tag=image.digest.replace(":", "-") + ".att")
    trust_key(server, tmp_path, repo.split("/")[0], "release", key)

    result = verify_json(server, f"{repo}:{tag}", 0)
    [checked] = result["attestations"]
    assert (checked["outcome"], checked["predicate_type"], checked["trust_entry"]) == (
        "verified", "https://slsa.dev/provenance/v1", "release")
    shown = json.loads(cli(server, "provenance", f"{repo}:{tag}", "--json").stdout)
    [prov] = shown["provenance"]
    assert (prov["builder"], prov["source"], prov["commit"], prov["finished"]) == (
        "https://github.com/actions/runner", "https://github.com/example/model",
        "0123456789abcdef0123456789abcdef01234567", "2026-11-30T10:04:00Z")
    text = cli(server, "provenance", f"{repo}:{tag}").stdout
    assert "commit    0123456789abcdef0123456789abcdef01234567" in text


def test_slsa_provenance_in_a_sigstore_bundle_referrer_is_verified(server, tmp_path):
    repo, tag, image = pushed_image(server)
    key = p256()
    push_tree(server, repo, bundle_attestation(key, image, slsa_statement(image.digest)))
    trust_key(server, tmp_path, repo.split("/")[0], "release", key)

    result = verify_json(server, f"{repo}:{tag}", 1)  # an attestation is not a signature
    assert result["signatures"] == []
    [checked] = result["attestations"]
    assert (checked["outcome"], checked["trust_entry"]) == ("verified", "release")
    shown = json.loads(cli(server, "provenance", f"{repo}:{tag}", "--json").stdout)
    assert [p["builder"] for p in shown["provenance"]] == ["https://github.com/actions/runner"]


def test_provenance_attested_by_an_untrusted_key_is_not_shown(server, tmp_path):
    repo, tag, image = pushed_image(server)
    push_tree(server, repo, attestation(p256(), slsa_statement(image.digest)),
              tag=image.digest.replace(":", "-") + ".att")
    trust_key(server, tmp_path, repo.split("/")[0], "release", p256())

    text = cli(server, "provenance", f"{repo}:{tag}", code=1).stdout
    assert "has no verified SLSA provenance" in text
    assert "does not verify with any key trusted" in text


# -- keyless (Fulcio certificates, checked against an offline trusted root) --------------------

ISSUER = "https://accounts.example.com"


@pytest.fixture(scope="module")
def fulcio() -> Any:
    return sigstore()


def trust_identity(reg: Server, tmp_path: Path, namespace: str, store: Any,
                   identity: str = "dev@example.com", **root: bool) -> None:
    path = tmp_path / "trusted_root.json"
    path.write_bytes(store.trusted_root(**root))
    cli(reg, "trust", "add", namespace, "--name", "ci", "--identity", identity,
        "--issuer", ISSUER, "--trusted-root", str(path))


def keyless_check(reg: Server, tmp_path: Path, store: Any, code: int,
                  root: dict[str, bool] | None = None, **bundle: Any) -> dict[str, Any]:
    """Push a keyless bundle (options: keyless_bundle's) of a new image, trust the identity,
    and `moorage verify` it: the one signature's check."""
    repo, tag, image = pushed_image(reg)
    push_tree(reg, repo, keyless_bundle(store, image, "dev@example.com", ISSUER, **bundle))
    trust_identity(reg, tmp_path, repo.split("/")[0], store, **(root or {}))
    return only(verify_json(reg, f"{repo}:{tag}", code))


def test_keyless_bundle_of_a_trusted_identity_verifies(server, tmp_path, fulcio):
    check = keyless_check(server, tmp_path, fulcio, 0)

    assert (check["kind"], check["outcome"], check["trust_entry"]) == (
        "sigstore-bundle", "verified", "ci")


def test_keyless_cosign_tag_signature_of_a_trusted_identity_verifies(server, tmp_path, fulcio):
    repo, tag, image = pushed_image(server)
    push_tree(server, repo, keyless_cosign_signature(
        fulcio, image.digest, f"{server.host}/{repo}", "dev@example.com", ISSUER),
        tag=cosign_tag(image.digest))
    trust_identity(server, tmp_path, repo.split("/")[0], fulcio)

    assert only(verify_json(server, f"{repo}:{tag}", 0))["trust_entry"] == "ci"


@pytest.mark.parametrize("options, reason", [
    ({"logged_digest": "cd" * 32}, "its log entry records another artifact (sha256:cdcdcdcd"),
    ({"shifted_time": True}, "its log entry's signed promise (SET) does not verify")],
    ids=["another-artifact", "altered-integrated-time"])
def test_keyless_cosign_tag_signature_with_a_bad_bundle_annotation_is_refused(
        server, tmp_path, fulcio, options, reason):
    repo, tag, image = pushed_image(server)
    push_tree(server, repo, keyless_cosign_signature(
        fulcio, image.digest, f"{server.host}/{repo}", "dev@example.com", ISSUER, **options),
        tag=cosign_tag(image.digest))
    trust_identity(server, tmp_path, repo.split("/")[0], fulcio)

    check = only(verify_json(server, f"{repo}:{tag}", 1))

    assert (check["outcome"], reason in check["message"]) == ("untrusted-log", True), check


def test_keyless_v01_bundle_with_only_the_log_promise_verifies(server, tmp_path, fulcio):
    check = keyless_check(server, tmp_path, fulcio, 0, media_type=BUNDLE_V01, proof=False)

    assert check["outcome"] == "verified"


def test_keyless_proof_without_promise_verifies_with_an_rfc3161_timestamp(
        server, tmp_path, fulcio):
    check = keyless_check(server, tmp_path, fulcio, 0, promise=False, timestamp="good")

    assert check["outcome"] == "verified"


def test_keyless_root_without_tlogs_accepts_a_timestamp_alone(server, tmp_path, fulcio):
    check = keyless_check(server, tmp_path, fulcio, 0, root={"tlogs": False}, logged=False,
                          timestamp="good")

    assert check["outcome"] == "verified"


# Each way the log or timestamp evidence can fail, and the reason `moorage verify` gives.
REFUSALS = {
    "no-log-entry": ({"logged": False}, "untrusted-log",
                     "carries no transparency-log entry, and the trusted root names a log"),
    "v03-without-proof": ({"proof": False}, "untrusted-log",
                          "its log entry has no inclusion proof (a v0.2+ bundle must carry one)"),
    "tampered-path": ({"tamper": "path"}, "untrusted-log",
                      "audit path does not lead from the entry to the checkpoint's root hash"),
    "wrong-root": ({"tamper": "root"}, "untrusted-log",
                   "is not the signed checkpoint's"),
    "checkpoint-by-unknown-key": ({"checkpoint_key": p256()}, "untrusted-log",
                                  "(signed by rekor.test) is not signed by the key of log"),
    "entry-for-another-artifact": ({"logged_digest": "ab" * 32}, "untrusted-log",
                                   "its log entry records another artifact (sha256:abababab"),
    "entry-of-another-signature": ({"logged_signature": b"someone else's signature"},
                                   "untrusted-log", "records another signature than this one"),
    "unknown-log": ({"log": sigstore()}, "untrusted-log", "which the trusted root does not name"),
    "logged-outside-cert-validity": ({"logged_after": dt.timedelta(minutes=30)}, "expired",
                                     "but it was signed at"),
    "proof-without-time": ({"promise": False}, "untrusted-log", "no trusted signing time"),
    "timestamp-over-other-bytes": ({"promise": False, "timestamp": "other-bytes"},
                                   "untrusted-log", "its RFC 3161 timestamp is over other bytes"),
    "timestamp-by-unknown-tsa": ({"promise": False, "timestamp": "stranger"}, "untrusted-log",
                                 "not signed by a timestamp authority of the trusted root"),
    "no-tlogs-no-timestamp": ({"logged": False, "root": {"tlogs": False}}, "untrusted-log",
                              "no trusted signing time"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_keyless_evidence_that_does_not_hold_is_refused_with_its_reason(
        server, tmp_path, fulcio, case):
    options, outcome, reason = REFUSALS[case]

    check = keyless_check(server, tmp_path, fulcio, 1, **options)

    assert check["outcome"] == outcome
    assert reason in check["message"]


def test_keyless_refusal_reason_is_printed_by_verify(server, tmp_path, fulcio):
    repo, tag, image = pushed_image(server)
    push_tree(server, repo, keyless_bundle(fulcio, image, "dev@example.com", ISSUER,
                                           tamper="path"))
    trust_identity(server, tmp_path, repo.split("/")[0], fulcio)

    text = " ".join(cli(server, "verify", f"{repo}:{tag}", code=1).stdout.split())

    assert "audit path does not lead from the entry to the checkpoint's root hash" in text


def test_keyless_signature_of_another_identity_is_refused(server, tmp_path, fulcio):
    repo, tag, image = pushed_image(server)
    push_tree(server, repo, keyless_bundle(fulcio, image, "mallory@example.com", ISSUER))
    trust_identity(server, tmp_path, repo.split("/")[0], fulcio)

    check = only(verify_json(server, f"{repo}:{tag}", 1))

    assert check["outcome"] == "untrusted-identity"
    assert "signed by mallory@example.com (issuer https://accounts.example.com), not the " \
        "trusted dev@example.com" in check["message"]


def test_keyless_certificate_of_another_ca_is_refused(server, tmp_path, fulcio):
    repo, tag, image = pushed_image(server)
    # Logged by the trusted log, so only the certificate's issuer is wrong.
    push_tree(server, repo, keyless_bundle(sigstore(), image, "dev@example.com", ISSUER,
                                           log=fulcio))
    trust_identity(server, tmp_path, repo.split("/")[0], fulcio)

    check = only(verify_json(server, f"{repo}:{tag}", 1))

    assert check["outcome"] == "untrusted-chain"
    assert "does not chain to a Fulcio authority of the trusted root" in check["message"]


# -- the trust CLI ------------------------------------------------------------------------------

def test_trust_add_list_remove_through_the_cli(server, tmp_path, pki):
    namespace = f"sig{uuid.uuid4().hex[:10]}"
    trust_key(server, tmp_path, namespace, "release", p256())
    trust_root(server, tmp_path, namespace, "corp-ca", pki["root"].pem)

    listed = json.loads(cli(server, "trust", "list", namespace, "--json").stdout)["entries"]
    assert [(e["name"], e["kind"], e["algorithm"]) for e in listed] == [
        ("corp-ca", "x509", "x509"), ("release", "key", "ecdsa-p256")]
    again = tmp_path / "again.pub"
    again.write_bytes(public_pem(p256()))
    dup = cli(server, "trust", "add", namespace, "--name", "release", "--key", str(again), code=1)
    assert f"namespace {namespace!r} already trusts an entry named 'release'" in dup.stderr
    weak = tmp_path / "weak.pub"
    weak.write_bytes(public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    refused = cli(server, "trust", "add", namespace, "--name", "weak", "--key", str(weak), code=1)
    assert "an RSA key of 1024 bits is too weak" in refused.stderr
    junk = tmp_path / "junk.pub"
    junk.write_text("hello")
    assert "not a PEM public key" in cli(server, "trust", "add", namespace, "--name", "junk",
                                         "--key", str(junk), code=1).stderr

    cli(server, "trust", "remove", namespace, "release")
    listed = json.loads(cli(server, "trust", "list", namespace, "--json").stdout)["entries"]
    assert [e["name"] for e in listed] == ["corp-ca"]
    gone = cli(server, "trust", "remove", namespace, "release", code=1)
    assert f"namespace {namespace!r} has no trust entry 'release'" in gone.stderr


# -- the real cosign binary, when installed -----------------------------------------------------

@pytest.mark.skipif(shutil.which("cosign") is None, reason="cosign is not installed")
def test_a_signature_made_by_cosign_verifies(server, tmp_path):
    repo, tag, image = pushed_image(server)
    env = {**os.environ, "COSIGN_PASSWORD": "", "COSIGN_YES": "true"}
    subprocess.run(["cosign", "generate-key-pair"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=60)
    subprocess.run(["cosign", "sign", "--key", "cosign.key", "--tlog-upload=false",
                    "--allow-http-registry", "--allow-insecure-registry",
                    f"{server.host}/{repo}@{image.digest}"],
                   cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
    cli(server, "trust", "add", repo.split("/")[0], "--name", "cosign", "--key",
        str(tmp_path / "cosign.pub"))

    assert verify_json(server, f"{repo}:{tag}", 0)["verified_by"] == ["cosign"]
