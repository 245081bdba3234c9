"""Signatures built in the tests exactly as cosign and notation lay them out (keys and
certificates made here with `cryptography`): not pushed, pushed with support.oci."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support.oci import (
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_MANIFEST,
    Blob,
    Manifest,
    descriptor,
    dumps,
    image_config,
    make_artifact,
)

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
NOTATION = "application/vnd.cncf.notary.signature"
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SLSA_V1 = "https://slsa.dev/provenance/v1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def public_pem(private: Any) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def sign(private: Any, data: bytes) -> bytes:
    """cosign's signature of `data` with a key: ECDSA SHA-256 DER, RSA PKCS#1 v1.5, Ed25519."""
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(private, rsa.RSAPrivateKey):
        return private.sign(data, padding.PKCS1v15(), hashes.SHA256())
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    return private.sign(data)


def simple_signing_payload(digest: str, reference: str) -> bytes:
    """The payload `cosign sign` signs for an image."""
    return json.dumps({"critical": {"identity": {"docker-reference": reference},
                                    "image": {"docker-manifest-digest": digest},
                                    "type": "cosign container image signature"},
                       "optional": None}).encode()


def cosign_tag(digest: str) -> str:
    return digest.replace(":", "-", 1) + ".sig"


def cosign_signature(private: Any, digest: str, reference: str, payload: bytes | None = None,
                     signed: bytes | None = None) -> Manifest:
    """The `sha256-<hex>.sig` manifest: one simple-signing layer with the signature annotation
    (`payload` replaces what is stored, `signed` what was signed: for tampering)."""
    good = simple_signing_payload(digest, reference)
    stored = payload if payload is not None else good
    signature = sign(private, signed if signed is not None else good)
    layer = Blob(stored, SIMPLE_SIGNING)
    config = Blob(image_config(), OCI_CONFIG)
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
           "layers": [descriptor(SIMPLE_SIGNING, stored,
                                 annotations={COSIGN_SIGNATURE: b64(signature)})]}
    return Manifest(dumps(doc), OCI_MANIFEST, blobs=[config, layer])


def bundle_referrer(private: Any, image: Manifest, digest_of_message: bytes | None = None,
                    hint: bool = True) -> Manifest:
    """A sigstore bundle v0.3 referrer of `image`: a message signature over the manifest."""
    message_digest = digest_of_message or hashlib.sha256(image.body).digest()
    signature = private.sign(image.body, ec.ECDSA(hashes.SHA256()))
    spki = private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    material: dict[str, Any] = {"tlogEntries": []}
    if hint:
        material["publicKey"] = {"hint": b64(hashlib.sha256(spki).digest())}
    bundle = {"mediaType": SIGSTORE_BUNDLE, "verificationMaterial": material,
              "messageSignature": {"messageDigest": {"algorithm": "SHA2_256",
                                                     "digest": b64(message_digest)},
                                   "signature": b64(signature)}}
    return make_artifact(SIGSTORE_BUNDLE, subject=image,
                         layers=[Blob(json.dumps(bundle).encode(), SIGSTORE_BUNDLE)])


@dataclass
class Ca:
    key: Any
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Moorage tests")])


def root_ca(cn: str = "Test Root") -> Ca:
    key = p256()
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    return Ca(key, cert)


def leaf(ca: Ca, cn: str = "signer", expired: bool = False, ecdsa: bool = False,
         usage: Any = ExtendedKeyUsageOID.CODE_SIGNING) -> Ca:
    """A code-signing certificate issued by `ca` (RSA 2048 for PS256, or P-256 for ES256)."""
    key: Any = p256() if ecdsa else rsa.generate_private_key(public_exponent=65537,
                                                             key_size=2048)
    now = dt.datetime.now(dt.UTC)
    start, end = ((now - dt.timedelta(days=30), now - dt.timedelta(days=1)) if expired
                  else (now - dt.timedelta(days=1), now + dt.timedelta(days=30)))
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]),
                           critical=False)
            .sign(ca.key, hashes.SHA256()))
    return Ca(key, cert)


def notation_referrer(signer: Ca, chain: list[Ca], image: Manifest,
                      target_digest: str | None = None, tamper: bool = False) -> Manifest:
    """A notation JWS signature referrer of `image` (x5c: leaf first, then the rest)."""
    ecdsa = isinstance(signer.key, ec.EllipticCurvePrivateKey)
    protected = {"alg": "ES256" if ecdsa else "PS256", "crit": ["io.cncf.notary.signingScheme"],
                 "cty": "application/vnd.cncf.notary.payload.v1+json",
                 "io.cncf.notary.signingScheme": "notary.x509",
                 "io.cncf.notary.signingTime": dt.datetime.now(dt.UTC).isoformat()}
    payload = {"targetArtifact": {"mediaType": image.media_type,
                                  "digest": target_digest or image.digest, "size": image.size}}
    p64, b64p = b64url(json.dumps(protected).encode()), b64url(json.dumps(payload).encode())
    signing_input = f"{p64}.{b64p}".encode()
    if ecdsa:  # JWS wants r || s, not DER (RFC 7518 section 3.4)
        r, s = decode_dss_signature(signer.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = signer.key.sign(signing_input, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                                    hashes.SHA256())
    if tamper:
        payload["targetArtifact"]["size"] = image.size + 1
        b64p = b64url(json.dumps(payload).encode())
    envelope = {"payload": b64p, "protected": p64, "signature": b64url(signature),
                "header": {"x5c": [b64(c.cert.public_bytes(serialization.Encoding.DER))
                                   for c in chain],
                           "io.cncf.notary.signingAgent": "moorage-tests/1"}}
    return make_artifact(NOTATION, subject=image,
                         config=Blob(EMPTY_JSON, OCI_EMPTY),
                         layers=[Blob(json.dumps(envelope).encode(), "application/jose+json")])


def _cbor(value: Any) -> bytes:
    """CBOR of ints, bytes, strings, lists, maps and (tag, value) pairs: the test's own encoder,
    independent of the server's decoder."""
    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        size = next(s for s in (1, 2, 4, 8) if n < 1 << (8 * s))
        return bytes([major << 5 | {1: 24, 2: 25, 4: 26, 8: 27}[size]]) + n.to_bytes(size, "big")

    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        return head(3, len(value.encode())) + value.encode()
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(_cbor(v) for v in value)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(_cbor(k) + _cbor(v) for k, v in value.items())
    tag, inner = value  # a (tag number, value) tuple
    return head(6, tag) + _cbor(inner)


def cose_notation_referrer(signer: Ca, chain: list[Ca], image: Manifest,
                           tamper: bool = False, expiry: float | None = None) -> Manifest:
    """A notation COSE_Sign1 signature referrer of `image` (x5chain: leaf first)."""
    ecdsa = isinstance(signer.key, ec.EllipticCurvePrivateKey)
    protected = {1: -7 if ecdsa else -37, 2: ["io.cncf.notary.signingScheme"],
                 3: "application/vnd.cncf.notary.payload.v1+json",
                 "io.cncf.notary.signingScheme": "notary.x509",
                 "io.cncf.notary.signingTime": (1, int(dt.datetime.now(dt.UTC).timestamp()))}
    if expiry is not None:
        protected["io.cncf.notary.expiry"] = (1, int(expiry))
    payload = {"targetArtifact": {"mediaType": image.media_type, "digest": image.digest,
                                  "size": image.size}}
    protected_raw, payload_raw = _cbor(protected), json.dumps(payload).encode()
    to_sign = _cbor(["Signature1", protected_raw, b"", payload_raw])
    if ecdsa:  # COSE wants r || s too (RFC 9053 section 2.1)
        r, s = decode_dss_signature(signer.key.sign(to_sign, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = signer.key.sign(to_sign, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                                    hashes.SHA256())
    if tamper:
        payload["targetArtifact"]["size"] = image.size + 1
        payload_raw = json.dumps(payload).encode()
    unprotected = {33: [c.cert.public_bytes(serialization.Encoding.DER) for c in chain],
                   "io.cncf.notary.signingAgent": "moorage-tests/1"}
    envelope = _cbor((18, [protected_raw, unprotected, payload_raw, signature]))
    return make_artifact(NOTATION, subject=image, config=Blob(EMPTY_JSON, OCI_EMPTY),
                         layers=[Blob(envelope, "application/cose")])


def slsa_statement(digest: str) -> dict[str, Any]:
    """An in-toto statement with an SLSA v1 provenance predicate for `digest`."""
    return {"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "image", "digest": {"sha256": digest.split(":", 1)[1]}}],
            "predicateType": SLSA_V1,
            "predicate": {
                "buildDefinition": {
                    "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                    "externalParameters": {"workflow": {
                        "repository": "https://github.com/example/model", "ref": "refs/heads/main"}},
                    "resolvedDependencies": [{
                        "uri": "git+https://github.com/example/model@refs/heads/main",
                        "digest": {"gitCommit": "0123456789abcdef0123456789abcdef01234567"}}]},
                "runDetails": {"builder": {"id": "https://github.com/actions/runner"},
                               "metadata": {"startedOn": "2026-11-30T10:00:00Z",
                                            "finishedOn": "2026-11-30T10:04:00Z"}}}}


def attestation(private: Any, statement: dict[str, Any]) -> Manifest:
    """The `sha256-<hex>.att` manifest `cosign attest` pushes: one DSSE envelope layer."""
    data = json.dumps(dsse_envelope(private, statement)).encode()
    config = Blob(image_config(), OCI_CONFIG)
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
           "layers": [descriptor(DSSE, data,
                                 annotations={"predicateType": statement["predicateType"]})]}
    return Manifest(dumps(doc), OCI_MANIFEST, blobs=[config, Blob(data, DSSE)])


def dsse_envelope(private: Any, statement: dict[str, Any]) -> dict[str, Any]:
    """A DSSE envelope of an in-toto statement signed with `private` (cosign's layout)."""
    payload = json.dumps(statement).encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(IN_TOTO), IN_TOTO.encode(), len(payload), payload)
    return {"payloadType": IN_TOTO, "payload": b64(payload),
            "signatures": [{"keyid": "", "sig": b64(sign(private, pae))}]}


def bundle_attestation(private: Any, image: Manifest, statement: dict[str, Any]) -> Manifest:
    """A sigstore bundle v0.3 referrer of `image` carrying a DSSE-signed in-toto statement."""
    bundle = {"mediaType": SIGSTORE_BUNDLE,
              "verificationMaterial": {"publicKey": {"hint": "release"}, "tlogEntries": []},
              "dsseEnvelope": dsse_envelope(private, statement)}
    return make_artifact(SIGSTORE_BUNDLE, subject=image,
                         layers=[Blob(json.dumps(bundle).encode(), SIGSTORE_BUNDLE)])


# -- keyless: a test Fulcio CA, transparency log and timestamp authority, and the
# trusted_root.json naming them ----------------------------------------------------------------

ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
BUNDLE_V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"


def spki(private: Any) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash, by its recursive definition (section 2.1)."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)  # the largest power of two below n
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


def audit_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 audit path of leaf `m` (section 2.1.1), leaf side first."""
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*audit_path(m, leaves[:k]), merkle_root(leaves[k:])]
    return [*audit_path(m - k, leaves[k:]), merkle_root(leaves[:k])]


def checkpoint(signer: Any, size: int, root: bytes, origin: str = "rekor.test - 42") -> str:
    """A signed note over the tree head, as Rekor writes it (key hint = log id's first bytes)."""
    note = f"{origin}\n{size}\n{b64(root)}\n".encode()
    signature = signer.sign(note, ec.ECDSA(hashes.SHA256()))
    hint = hashlib.sha256(spki(signer)).digest()[:4]
    return note.decode() + f"\n\u2014 {origin.split()[0]} {b64(hint + signature)}\n"


@dataclass
class Sigstore:
    """A Fulcio-like CA, a Rekor-like log key and an RFC 3161 timestamp authority, as an
    offline trusted root describes them."""

    fulcio: Ca
    log_key: Any
    tsa_root: Ca
    tsa: Ca

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(spki(self.log_key)).digest()

    def trusted_root(self, tlogs: bool = True, timestamps: bool = True) -> bytes:
        der = spki(self.log_key)
        chain = [{"rawBytes": b64(c.cert.public_bytes(serialization.Encoding.DER))}
                 for c in (self.tsa, self.tsa_root)]
        return json.dumps({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{"baseUrl": "https://rekor.test", "hashAlgorithm": "SHA2_256",
                       "publicKey": {"rawBytes": b64(der),
                                     "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                     "validFor": {"start": "2020-01-01T00:00:00Z"}},
                       "logId": {"keyId": b64(self.log_id)}}] if tlogs else [],
            "certificateAuthorities": [{
                "subject": {"organization": "Moorage tests", "commonName": "fulcio"},
                "uri": "https://fulcio.test",
                "certChain": {"certificates": [
                    {"rawBytes": b64(self.fulcio.cert.public_bytes(serialization.Encoding.DER))}]},
                "validFor": {"start": "2020-01-01T00:00:00Z"}}],
            "ctlogs": [],
            "timestampAuthorities": [{
                "subject": {"organization": "Moorage tests", "commonName": "tsa"},
                "certChain": {"certificates": chain},
                "validFor": {"start": "2020-01-01T00:00:00Z"}}] if timestamps else []}).encode()

    def certificate(self, identity: str, issuer: str, start: dt.datetime) -> Ca:
        """A 10-minute Fulcio-style certificate for `identity` from `issuer`."""
        key = p256()
        issuer_der = b"\x0c" + bytes([len(issuer)]) + issuer.encode()
        cert = (x509.CertificateBuilder().subject_name(x509.Name([]))
                .issuer_name(self.fulcio.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + dt.timedelta(minutes=10))
                .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(identity)]),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                               critical=False)
                .add_extension(x509.UnrecognizedExtension(ISSUER_V1, issuer.encode()),
                               critical=False)
                .add_extension(x509.UnrecognizedExtension(ISSUER_V2, issuer_der),
                               critical=False)
                .sign(self.fulcio.key, hashes.SHA256()))
        return Ca(key, cert)

    def log(self, signature: bytes, cert: Ca, digest_hex: str, at: dt.datetime,
            promise: bool = True, proof: bool = True, tamper: str | None = None,
            checkpoint_key: Any = None) -> dict[str, Any]:
        """A hashedrekord entry of `signature` logged at `at`: leaf 5 of a 7-leaf tree with its
        inclusion proof and signed checkpoint, and its signed entry timestamp (`tamper`:
        "path" alters a hash of the audit path, "root" the proof's root hash)."""
        body = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest_hex}},
            "signature": {"content": b64(signature),
                          "publicKey": {"content": b64(cert.pem)}}}}
        raw = json.dumps(body).encode()
        body64 = b64(raw)
        when, index = int(at.timestamp()), 4242
        entry: dict[str, Any] = {
            "logIndex": str(index), "logId": {"keyId": b64(self.log_id)},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
            "integratedTime": str(when), "canonicalizedBody": body64}
        if promise:
            signed = json.dumps({"body": body64, "integratedTime": when,
                                 "logID": self.log_id.hex(), "logIndex": index},
                                sort_keys=True, separators=(",", ":")).encode()
            entry["inclusionPromise"] = {"signedEntryTimestamp": b64(
                self.log_key.sign(signed, ec.ECDSA(hashes.SHA256())))}
        if proof:
            leaves = [f"other entry {i}".encode() for i in range(7)]
            leaves[5] = raw
            root, path = merkle_root(leaves), audit_path(5, leaves)
            signed_root = root
            if tamper == "path":
                path[1] = hashlib.sha256(b"forged").digest()
            elif tamper == "root":
                root = hashlib.sha256(b"another tree").digest()
            entry["inclusionProof"] = {
                "logIndex": "5", "treeSize": "7", "rootHash": b64(root),
                "hashes": [b64(h) for h in path],
                "checkpoint": {"envelope": checkpoint(checkpoint_key or self.log_key, 7,
                                                      signed_root)}}
        return entry

    def timestamp(self, signature: bytes, at: dt.datetime, authority: Ca | None = None) -> bytes:
        """An RFC 3161 TimeStampResp over SHA-256(`signature`) issued by the test TSA."""
        return timestamp_response(authority or self.tsa, hashlib.sha256(signature).digest(), at)


def sigstore() -> Sigstore:
    tsa_root = root_ca("tsa root")
    return Sigstore(root_ca("fulcio"), p256(), tsa_root, tsa_leaf(tsa_root))


def tsa_leaf(ca: Ca) -> Ca:
    """A timestamping certificate (critical EKU id-kp-timeStamping, RFC 3161 2.3) from `ca`."""
    key = p256()
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("tsa")).issuer_name(ca.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=2))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                           critical=True)
            .sign(ca.key, hashes.SHA256()))
    return Ca(key, cert)


# A DER encoder of the few ASN.1 types a timestamp token needs: the tests' own, independent of
# the library the server verifies tokens with.

def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + (bytes([n]) if n < 0x80 else bytes([0x80 | len(size)]) + size) + content


def _seq(*items: bytes) -> bytes:
    return _der(0x30, b"".join(items))


def _set(*items: bytes) -> bytes:
    return _der(0x31, b"".join(sorted(items)))  # DER orders a SET OF by encoding


def _int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(x) for x in dotted.split("."))
    out = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        out += bytes(reversed(chunk))
    return _der(0x06, bytes(out))


SHA256_ALG = _seq(_oid("2.16.840.1.101.3.4.2.1"), b"\x05\x00")
TST_INFO = "1.2.840.113549.1.9.16.1.4"


def timestamp_response(tsa: Ca, imprint: bytes, at: dt.datetime) -> bytes:
    """A granted TimeStampResp: CMS SignedData over a TSTInfo, signed attributes included."""
    tst = _seq(_int(1), _oid("1.3.6.1.4.1.57264.2"), _seq(SHA256_ALG, _der(0x04, imprint)),
               _int(x509.random_serial_number()),
               _der(0x18, at.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ").encode()))
    cert_der = tsa.cert.public_bytes(serialization.Encoding.DER)
    attrs = _set(
        _seq(_oid("1.2.840.113549.1.9.3"), _set(_oid(TST_INFO))),
        _seq(_oid("1.2.840.113549.1.9.4"), _set(_der(0x04, hashlib.sha256(tst).digest()))),
        _seq(_oid("1.2.840.113549.1.9.16.2.47"),
             _set(_seq(_seq(_seq(_der(0x04, hashlib.sha256(cert_der).digest())))))))
    signature = tsa.key.sign(attrs, ec.ECDSA(hashes.SHA256()))
    signer = _seq(_int(1), _seq(tsa.cert.issuer.public_bytes(), _int(tsa.cert.serial_number)),
                  SHA256_ALG, b"\xa0" + attrs[1:], _seq(_oid("1.2.840.10045.4.3.2")),
                  _der(0x04, signature))
    signed_data = _seq(_int(3), _set(SHA256_ALG),
                       _seq(_oid(TST_INFO), _der(0xA0, _der(0x04, tst))),
                       _der(0xA0, cert_der), _set(signer))
    token = _seq(_oid("1.2.840.113549.1.7.2"), _der(0xA0, signed_data))
    return _seq(_seq(_int(0)), token)


def keyless_bundle(store: Sigstore, image: Manifest, identity: str, issuer: str,
                   logged_after: dt.timedelta = dt.timedelta(minutes=2),
                   logged: bool = True, logged_signature: bytes | None = None,
                   logged_digest: str | None = None, log: Sigstore | None = None,
                   media_type: str = SIGSTORE_BUNDLE, timestamp: str | None = None,
                   **entry: Any) -> Manifest:
    """A sigstore bundle referrer signed keylessly: Fulcio certificate + log entry (`log`'s,
    default `store`'s; `entry` options go to Sigstore.log) + optionally an RFC 3161 timestamp
    ("good", "other-bytes", "stranger": by a TSA of another root)."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    cert = store.certificate(identity, issuer, start)
    signature = cert.key.sign(image.body, ec.ECDSA(hashes.SHA256()))
    digest = hashlib.sha256(image.body).digest()
    entries = [(log or store).log(logged_signature or signature, cert,
                                  logged_digest or digest.hex(), start + logged_after, **entry)
               ] if logged else []
    material: dict[str, Any] = {
        "certificate": {"rawBytes": b64(cert.cert.public_bytes(serialization.Encoding.DER))},
        "tlogEntries": entries}
    if timestamp is not None:
        at = start + dt.timedelta(minutes=3)
        token = {"good": lambda: store.timestamp(signature, at),
                 "other-bytes": lambda: store.timestamp(b"other bytes", at),
                 "stranger": lambda: store.timestamp(signature, at, sigstore().tsa)}[timestamp]()
        material["timestampVerificationData"] = {"rfc3161Timestamps": [
            {"signedTimestamp": b64(token)}]}
    bundle = {"mediaType": media_type, "verificationMaterial": material,
              "messageSignature": {"messageDigest": {"algorithm": "SHA2_256",
                                                     "digest": b64(digest)},
                                   "signature": b64(signature)}}
    return make_artifact(SIGSTORE_BUNDLE, subject=image,
                         layers=[Blob(json.dumps(bundle).encode(), SIGSTORE_BUNDLE)])


def keyless_cosign_signature(store: Sigstore, digest: str, reference: str, identity: str,
                             issuer: str, logged_digest: str | None = None,
                             shifted_time: bool = False) -> Manifest:
    """The `.sig` manifest of a keyless `cosign sign`: certificate and bundle annotations
    (`shifted_time`: the annotation's integratedTime changed after the log signed it)."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    cert = store.certificate(identity, issuer, start)
    payload = simple_signing_payload(digest, reference)
    signature = cert.key.sign(payload, ec.ECDSA(hashes.SHA256()))
    entry = store.log(signature, cert, logged_digest or hashlib.sha256(payload).hexdigest(),
                      start + dt.timedelta(minutes=1), proof=False)
    annotation = {"SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
                  "Payload": {"body": entry["canonicalizedBody"],
                              "integratedTime": int(entry["integratedTime"]) + shifted_time,
                              "logIndex": int(entry["logIndex"]),
                              "logID": store.log_id.hex()}}
    config = Blob(image_config(), OCI_CONFIG)
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
           "layers": [descriptor(SIMPLE_SIGNING, payload, annotations={
               COSIGN_SIGNATURE: b64(signature),
               "dev.sigstore.cosign/certificate": cert.pem.decode(),
               "dev.sigstore.cosign/chain": store.fulcio.pem.decode(),
               "dev.sigstore.cosign/bundle": json.dumps(annotation)})]}
    return Manifest(dumps(doc), OCI_MANIFEST, blobs=[config, Blob(payload, SIMPLE_SIGNING)])
