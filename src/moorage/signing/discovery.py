"""Finding the signatures and attestations of a manifest, and reading them into envelopes.

Three layouts are recognised, all in the manifest's own repository:
- cosign's tag scheme: `sha256-<hex>.sig` (simple-signing layers, the signature in the
  `dev.cosignproject.cosign/signature` annotation) and `sha256-<hex>.att` (DSSE layers);
- OCI 1.1 referrers carrying a sigstore bundle (a message signature or a DSSE envelope);
- OCI 1.1 referrers carrying a notation signature (a JWS or COSE_Sign1 envelope with an x509
  chain).
An envelope is what was signed and how; signing/verify.py decides whether a trusted entry made it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..oci.digest import parse_digest
from ..oci.errors import RegistryError
from .rekor import InclusionProof

if TYPE_CHECKING:
    from ..metadata.queries.trust import CandidateRow
    from ..metadata.uow import Database
    from ..registry.blobs import BlobService
    from ..storage.base import BlobStore

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
COSIGN_CERTIFICATE = "dev.sigstore.cosign/certificate"
COSIGN_BUNDLE = "dev.sigstore.cosign/bundle"
DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIGSTORE_BUNDLES = (SIGSTORE_BUNDLE, "application/vnd.dev.sigstore.bundle+json;version=0.3",
                    "application/vnd.dev.sigstore.bundle.v0.2+json",
                    "application/vnd.dev.sigstore.bundle+json;version=0.2",
                    "application/vnd.dev.sigstore.bundle+json;version=0.1")
# Bundles from v0.2 on must prove inclusion; a v0.1 bundle may offer the log's promise alone.
PROMISE_ONLY_BUNDLES = ("application/vnd.dev.sigstore.bundle+json;version=0.1",)
NOTATION = "application/vnd.cncf.notary.signature"
JWS = "application/jose+json"
COSE = "application/cose"
NOTARY_PAYLOAD = "application/vnd.cncf.notary.payload.v1+json"
NOTARY_CRITICAL = ("io.cncf.notary.signingScheme", "io.cncf.notary.expiry",
                   "io.cncf.notary.authenticSigningTime")
IN_TOTO = "application/vnd.in-toto+json"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
ARTIFACT_TYPES = [*SIGSTORE_BUNDLES, NOTATION]
MAX_ENVELOPE_BYTES = 1 << 20  # a signature or attestation blob; larger ones are refused
MAX_LAYERS = 16  # signatures read from one signature manifest
ENVELOPE_CACHE = 2048  # signature manifests whose envelopes stay parsed (immutable by digest)

SIGNATURE_KINDS = ("cosign-tag", "sigstore-bundle", "notation")
ATTESTATION = "attestation"


@dataclass(frozen=True, slots=True)
class LogEntry:
    """A transparency-log entry as a bundle (or cosign's bundle annotation) carries it."""

    log_id: str  # hex
    log_index: int
    integrated_time: int
    body: str  # base64 of the canonicalized entry body
    signed_entry_timestamp: bytes | None  # the inclusion promise (SET), when given
    proof: InclusionProof | None = None
    needs_proof: bool = False  # a v0.2+ bundle: the promise alone is not enough


@dataclass(frozen=True, slots=True)
class Envelope:
    """One signature as found: what it claims to sign and the bytes to check."""

    kind: str  # cosign-tag | sigstore-bundle | notation | attestation
    manifest: str  # the digest of the manifest that carries it
    found_as: str  # `tag sha256-….sig` or `referrer <artifactType>`
    scheme: str = "none"  # raw | prehashed | jws | dsse | none (nothing to verify)
    data: bytes = b""  # the signed bytes (or the digest for `prehashed`)
    signature: bytes = b""
    algorithm: str = ""  # JWS alg, or the bundle's digest algorithm
    chain: tuple[bytes, ...] = ()  # DER certificates, leaf first (notation)
    hint: str | None = None  # the key the signer named (bundle hint, DSSE keyid)
    subjects: tuple[str, ...] = ()  # the digests the payload names
    problem: tuple[str, str] | None = None  # (code, sentence) when unreadable or unsupported
    expiry: float | None = None  # the signature's own expiry (notation), Unix seconds
    statement: dict[str, Any] | None = field(default=None, compare=False)  # in-toto
    predicate_type: str | None = None
    certificate: bytes | None = None  # keyless: the Fulcio certificate (DER)
    log_entries: tuple[LogEntry, ...] = ()  # keyless: transparency-log entries
    timestamps: tuple[bytes, ...] = ()  # keyless: RFC 3161 TimeStampResp DER
    artifact: tuple[str, str] = ("", "")  # (algorithm, hex) a log entry must record as signed


def cosign_tags(digest: str) -> list[str]:
    """cosign's tag names for the signatures and attestations of `digest`."""
    base = digest.replace(":", "-", 1)
    return [f"{base}.sig", f"{base}.att"]


class SignatureFinder:
    """Lists a manifest's envelopes: one indexed query for the candidates, then their layers
    (parsed once per signature manifest: content by digest never changes)."""

    def __init__(self, database: Database, blobs: BlobService, store: BlobStore) -> None:
        self.database = database
        self.blobs = blobs
        self.store = store
        self._parsed: OrderedDict[tuple[str, str, str], list[Envelope]] = OrderedDict()
        self._lock = threading.Lock()  # request threads share the cache

    def find(self, repository: str, digest: str) -> list[Envelope]:
        """Every envelope that may sign or attest `digest` in `repository`."""
        with self.database.read() as uow:
            rows = uow.trust.candidates(repository, digest, cosign_tags(digest), ARTIFACT_TYPES)
        found: list[Envelope] = []
        for row in rows:
            if row.via == "referrer" or row.digest != digest:
                found.extend(self._envelopes(repository, row))
        return found

    def _envelopes(self, repository: str, row: CandidateRow) -> list[Envelope]:
        key = (repository, row.digest, row.label or "")
        cached = self._parsed.get(key)
        if cached is not None:
            return cached
        envelopes = self._read(repository, row)
        with self._lock:
            self._parsed[key] = envelopes
            while len(self._parsed) > ENVELOPE_CACHE:
                self._parsed.popitem(last=False)
        return envelopes

    def _read(self, repository: str, row: CandidateRow) -> list[Envelope]:
        label = row.label or ""
        found_as = f"tag {label}" if row.via == "tag" else f"referrer {label}"
        kind = ("attestation" if label.endswith(".att") else "cosign-tag") if row.via == "tag" \
            else ("notation" if label == NOTATION else "sigstore-bundle")
        base = Envelope(kind, row.digest, found_as)
        try:
            manifest = json.loads(row.content)
            layers = manifest.get("layers") or []
            if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
                raise ValueError("layers is not a list of descriptors")
        except (ValueError, AttributeError):
            return [_problem(base, "the signature manifest is not an image manifest")]
        if not layers:
            return [_problem(base, "the signature manifest has no layers")]
        out: list[Envelope] = []
        for layer in layers[:MAX_LAYERS]:
            try:
                out.append(self._layer(repository, base, layer))
            except Malformed as exc:
                out.append(_problem(base, str(exc)))
        return out

    def _layer(self, repository: str, base: Envelope, layer: dict[str, Any]) -> Envelope:
        media_type = str(layer.get("mediaType", ""))
        if base.kind == "cosign-tag":
            if media_type != SIMPLE_SIGNING:
                raise Malformed(f"a layer of type {media_type!r} is not a cosign simple-signing "
                                f"payload")
            return _simple_signing(base, layer, self._blob(repository, layer))
        if base.kind == "attestation":
            if media_type != DSSE_LAYER:
                raise Malformed(f"a layer of type {media_type!r} is not a DSSE envelope")
            return _dsse(base, _json(self._blob(repository, layer)), "attestation")
        if base.kind == "notation":
            if media_type == COSE:
                return _cose_notation(base, self._blob(repository, layer))
            if media_type != JWS:
                raise Malformed(f"a notation layer of type {media_type!r} is neither JWS nor COSE")
            return _notation(base, _json(self._blob(repository, layer)))
        return _bundle(base, _json(self._blob(repository, layer)))

    def _blob(self, repository: str, layer: dict[str, Any]) -> bytes:
        try:
            digest = parse_digest(str(layer.get("digest", "")))
            row = self.blobs.locate(repository, digest)
        except RegistryError as exc:
            raise Malformed(f"its layer {layer.get('digest')} is not in the repository") from exc
        if row.size > MAX_ENVELOPE_BYTES:
            raise Malformed(f"its layer of {row.size} bytes is larger than the "
                            f"{MAX_ENVELOPE_BYTES} a signature may be")
        data = b"".join(self.store.open_blob(row.storage_key, 0, row.size))
        if digest.algorithm in ("sha256", "sha512") and \
                hashlib.new(digest.algorithm, data).hexdigest() != digest.hex:
            raise Malformed(f"its layer {digest} does not have that digest")
        return data


class Malformed(ValueError):
    """A signature we cannot read; the message says what is wrong with it."""


def _problem(base: Envelope, message: str, code: str = "malformed") -> Envelope:
    return Envelope(base.kind, base.manifest, base.found_as, problem=(code, message))


def _b64(value: Any, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not."""
    if not isinstance(value, str) or not value:
        raise Malformed(f"{what} is missing")
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Malformed(f"{what} is not base64") from exc


def _json(data: bytes, what: str = "the envelope") -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"{what} is not JSON") from exc


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is missing or not an object")
    return value


def _simple_signing(base: Envelope, layer: dict[str, Any], payload: bytes) -> Envelope:
    annotations = layer.get("annotations") or {}
    signature = _b64(annotations.get(COSIGN_SIGNATURE), f"the {COSIGN_SIGNATURE} annotation")
    doc = _obj(_json(payload, "the simple-signing payload"), "the simple-signing payload")
    critical = _obj(doc.get("critical"), "the payload's `critical` section")
    image = _obj(critical.get("image"), "the payload's `critical.image`")
    signed = image.get("docker-manifest-digest")
    if not isinstance(signed, str):
        raise Malformed("the payload names no critical.image.docker-manifest-digest")
    certificate: bytes | None = None
    entries: tuple[LogEntry, ...] = ()
    if annotations.get(COSIGN_CERTIFICATE):
        certificate = _pem_certificate(annotations[COSIGN_CERTIFICATE])
        entries = _cosign_bundle(annotations.get(COSIGN_BUNDLE))
    return Envelope(base.kind, base.manifest, base.found_as, "raw", payload, signature,
                    subjects=(signed,), certificate=certificate, log_entries=entries,
                    artifact=("sha256", hashlib.sha256(payload).hexdigest()))


def _pem_certificate(text: Any) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(str(text).encode())
    except ValueError as exc:
        raise Malformed(f"the {COSIGN_CERTIFICATE} annotation is not a PEM certificate") from exc
    return cert.public_bytes(serialization.Encoding.DER)


def _cosign_bundle(text: Any) -> tuple[LogEntry, ...]:
    """The log entry of cosign's `dev.sigstore.cosign/bundle` annotation (none without it)."""
    if not text:
        return ()
    doc = _obj(_json(str(text).encode(), "the cosign bundle annotation"), "the cosign bundle")
    payload = _obj(doc.get("Payload"), "the cosign bundle's Payload")
    try:
        return (LogEntry(str(payload["logID"]), int(payload["logIndex"]),
                         int(payload["integratedTime"]), str(payload["body"]),
                         _b64(doc.get("SignedEntryTimestamp"), "the signed entry timestamp")),)
    except (KeyError, ValueError, TypeError) as exc:
        raise Malformed("the cosign bundle annotation lacks a log entry field") from exc


def _tlog_entries(material: dict[str, Any], needs_proof: bool) -> tuple[LogEntry, ...]:
    """The log entries (inclusion proofs, promises) of a bundle's verificationMaterial."""
    out = []
    for entry in material.get("tlogEntries") or []:
        if not isinstance(entry, dict):
            continue
        try:
            promise = entry.get("inclusionPromise")
            out.append(LogEntry(
                _b64((entry.get("logId") or {}).get("keyId"), "a log id").hex(),
                int(entry["logIndex"]), int(entry["integratedTime"]),
                str(entry["canonicalizedBody"]),
                _b64(_obj(promise, "an inclusion promise").get("signedEntryTimestamp"),
                     "a signed entry timestamp") if promise is not None else None,
                _inclusion_proof(entry.get("inclusionProof")), needs_proof))
        except (KeyError, ValueError, TypeError) as exc:
            if isinstance(exc, Malformed):
                raise
            raise Malformed("a bundle log entry lacks a field") from exc
    return tuple(out)


def _inclusion_proof(proof: Any) -> InclusionProof | None:
    if proof is None:
        return None
    proof = _obj(proof, "an inclusion proof")
    checkpoint = _obj(proof.get("checkpoint"), "an inclusion proof's checkpoint").get("envelope")
    if not isinstance(checkpoint, str):
        raise Malformed("an inclusion proof has no checkpoint envelope")
    hashes = proof.get("hashes") or []
    if not isinstance(hashes, list):
        raise Malformed("an inclusion proof's hashes are not a list")
    return InclusionProof(int(proof["logIndex"]), int(proof["treeSize"]),
                          _b64(proof.get("rootHash"), "an inclusion proof's root hash"),
                          tuple(_b64(h, "an audit path hash") for h in hashes), checkpoint)


def _rfc3161_timestamps(material: dict[str, Any]) -> tuple[bytes, ...]:
    data = _obj(material.get("timestampVerificationData") or {}, "the timestamp data")
    stamps = data.get("rfc3161Timestamps") or []
    if not isinstance(stamps, list):
        raise Malformed("the bundle's rfc3161Timestamps is not a list")
    return tuple(_b64(_obj(t, "an RFC 3161 timestamp").get("signedTimestamp"),
                      "an RFC 3161 signed timestamp") for t in stamps)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding of a payload."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _dsse(base: Envelope, doc: Any, kind: str, hint: str | None = None) -> Envelope:
    doc = _obj(doc, "the DSSE envelope")
    payload_type = doc.get("payloadType")
    if not isinstance(payload_type, str):
        raise Malformed("the DSSE envelope has no payloadType")
    payload = _b64(doc.get("payload"), "the DSSE payload")
    sigs = doc.get("signatures")
    if not isinstance(sigs, list) or not sigs or not isinstance(sigs[0], dict):
        raise Malformed("the DSSE envelope has no signature")
    # One envelope is one signer here (cosign writes one); further signatures are not read.
    signature = _b64(sigs[0].get("sig"), "the DSSE signature")
    keyid = sigs[0].get("keyid") or hint
    statement = _obj(_json(payload, "the DSSE payload"), "the in-toto statement") \
        if payload_type == IN_TOTO else None
    subjects: list[str] = []
    predicate_type = None
    if statement is not None:
        predicate_type = statement.get("predicateType")
        for subject in statement.get("subject") or []:
            for algo, hexdigest in ((subject or {}).get("digest") or {}).items():
                subjects.append(f"{algo}:{hexdigest}")
        if predicate_type == COSIGN_SIGN_PREDICATE and kind == "attestation":
            kind = "sigstore-bundle"
    return Envelope(kind, base.manifest, base.found_as, "dsse", pae(payload_type, payload),
                    signature, hint=str(keyid) if keyid else None, subjects=tuple(subjects),
                    artifact=("sha256", hashlib.sha256(payload).hexdigest()),
                    statement=statement,
                    predicate_type=predicate_type if isinstance(predicate_type, str) else None)


def _bundle(base: Envelope, doc: Any) -> Envelope:
    doc = _obj(doc, "the sigstore bundle")
    material = _obj(doc.get("verificationMaterial"), "the bundle's verificationMaterial")
    certificate = None
    if "certificate" in material:
        certificate = _b64(_obj(material["certificate"], "the bundle's certificate")
                           .get("rawBytes"), "the bundle's certificate")
    elif "x509CertificateChain" in material:
        certs = _obj(material["x509CertificateChain"], "the bundle's certificate chain")
        first = (certs.get("certificates") or [{}])[0]
        certificate = _b64(_obj(first, "a chain certificate").get("rawBytes"), "a certificate")
    entries: tuple[LogEntry, ...] = ()
    stamps: tuple[bytes, ...] = ()
    if certificate is not None:
        entries = _tlog_entries(material, doc.get("mediaType") not in PROMISE_ONLY_BUNDLES)
        stamps = _rfc3161_timestamps(material)
    hint = (material.get("publicKey") or {}).get("hint")
    if "dsseEnvelope" in doc:
        envelope = _dsse(base, doc["dsseEnvelope"], "attestation",
                         hint if isinstance(hint, str) else None)
        return replace(envelope, certificate=certificate, log_entries=entries,
                       timestamps=stamps)
    message = _obj(doc.get("messageSignature"), "the bundle's messageSignature")
    digest = _obj(message.get("messageDigest"), "the bundle's messageDigest")
    algorithm = str(digest.get("algorithm", ""))
    value = _b64(digest.get("digest"), "the bundle's message digest")
    prefix = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}.get(algorithm)
    if prefix is None:
        raise Malformed(f"the bundle's digest algorithm {algorithm!r} is not supported")
    signature = _b64(message.get("signature"), "the bundle's signature")
    return Envelope(base.kind, base.manifest, base.found_as, "prehashed", value, signature,
                    algorithm, hint=hint if isinstance(hint, str) else None,
                    subjects=(f"{prefix}:{value.hex()}",), certificate=certificate,
                    log_entries=entries, timestamps=stamps, artifact=(prefix, value.hex()))


def _notation(base: Envelope, doc: Any) -> Envelope:
    doc = _obj(doc, "the JWS envelope")
    protected_b64, payload_b64 = doc.get("protected"), doc.get("payload")
    if not isinstance(protected_b64, str) or not isinstance(payload_b64, str):
        raise Malformed("the JWS envelope lacks `protected` or `payload`")
    header = _obj(_json(_b64(protected_b64, "the JWS protected header"), "the protected header"),
                  "the JWS protected header")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise Malformed("the JWS protected header names no alg")
    if header.get("cty") != NOTARY_PAYLOAD:
        raise Malformed(f"the JWS content type is {header.get('cty')!r}, not {NOTARY_PAYLOAD}")
    problem = _notary_headers(base, "JWS", header.get("crit"), header)
    if problem is not None:
        return problem
    signed = _target_digest(_b64(payload_b64, "the JWS payload"), "the JWS payload")
    unprotected = doc.get("header") or {}
    x5c = unprotected.get("x5c") if isinstance(unprotected, dict) else None
    if not isinstance(x5c, list) or not x5c:
        raise Malformed("the JWS header has no x5c certificate chain")
    chain = tuple(_b64(c, "an x5c certificate") for c in x5c)
    signature = _b64(doc.get("signature"), "the JWS signature")
    expiry = _rfc3339(header.get("io.cncf.notary.expiry"))
    return Envelope(base.kind, base.manifest, base.found_as, "jws",
                    f"{protected_b64}.{payload_b64}".encode(), signature, alg, chain,
                    subjects=(signed,), expiry=expiry)


def _notary_headers(base: Envelope, what: str, crit: Any, header: dict[Any, Any]
                    ) -> Envelope | None:
    """An `unsupported` Envelope when a notation envelope's critical headers or signing scheme
    are ones this verifier does not know, else None."""
    crit = crit or []
    unknown = [c for c in crit if c not in NOTARY_CRITICAL] if isinstance(crit, list) else [crit]
    if unknown:
        # A verifier must refuse critical headers it does not understand (RFC 7515, 4.1.11).
        return _problem(base, f"the {what} has critical headers this verifier does not know "
                              f"({', '.join(map(str, unknown))})", "unsupported")
    scheme = header.get("io.cncf.notary.signingScheme")
    if scheme not in ("notary.x509", None):
        return _problem(base, f"the notation signing scheme {scheme!r} is not verified here "
                              f"(only notary.x509)", "unsupported")
    return None


def _target_digest(payload: bytes, what: str) -> str:
    """The digest a notation payload's `targetArtifact` names."""
    target = _obj(_obj(_json(payload, what), "the payload").get("targetArtifact"),
                  "the payload's targetArtifact")
    signed = target.get("digest")
    if not isinstance(signed, str):
        raise Malformed("the payload's targetArtifact has no digest")
    return signed


# COSE algorithm ids (RFC 9053) as the JWS names the verifier checks them by.
COSE_ALGS = {-7: "ES256", -35: "ES384", -36: "ES512", -37: "PS256", -38: "PS384", -39: "PS512"}
COSE_SIGN1_TAG = 18
COSE_X5CHAIN = 33


def _cose_notation(base: Envelope, data: bytes) -> Envelope:
    """A notation COSE_Sign1 envelope (RFC 9052): the Sig_structure is what was signed."""
    from .cbor import CborError, Tag, dumps, loads

    try:
        item = loads(data)
        if isinstance(item, Tag) and item.number == COSE_SIGN1_TAG:
            item = item.value
        if not isinstance(item, list) or len(item) != 4:
            raise Malformed("the COSE envelope is not a COSE_Sign1 array of four items")
        protected_raw, unprotected, payload_raw, signature = item
        if not isinstance(protected_raw, bytes) or not isinstance(payload_raw, bytes) \
                or not isinstance(signature, bytes) or not isinstance(unprotected, dict):
            raise Malformed("the COSE_Sign1 items have the wrong types (a detached payload is "
                            "not read)")
        header = loads(protected_raw) if protected_raw else {}
    except CborError as exc:
        raise Malformed(f"the COSE envelope is not CBOR: {exc}") from exc
    if not isinstance(header, dict):
        raise Malformed("the COSE protected header is not a map")
    alg = COSE_ALGS.get(header.get(1))  # type: ignore[arg-type]
    if alg is None:
        return _problem(base, f"the COSE algorithm {header.get(1)!r} is not verified here "
                              f"(ES256/384/512, PS256/384/512)", "unsupported")
    if header.get(3) != NOTARY_PAYLOAD:
        raise Malformed(f"the COSE content type is {header.get(3)!r}, not {NOTARY_PAYLOAD}")
    problem = _notary_headers(base, "COSE envelope", header.get(2), header)
    if problem is not None:
        return problem
    signed = _target_digest(payload_raw, "the COSE payload")
    x5chain = unprotected.get(COSE_X5CHAIN)
    chain = [x5chain] if isinstance(x5chain, bytes) else x5chain
    if not isinstance(chain, list) or not chain or not all(isinstance(c, bytes) for c in chain):
        raise Malformed("the COSE unprotected header has no x5chain certificate chain")
    expiry = header.get("io.cncf.notary.expiry")
    if isinstance(expiry, Tag):
        expiry = expiry.value
    if expiry is not None and not isinstance(expiry, int | float):
        raise Malformed("the COSE signature expiry is not a time")
    to_sign = dumps(["Signature1", protected_raw, b"", payload_raw])
    return Envelope(base.kind, base.manifest, base.found_as, "jws", to_sign, signature, alg,
                    tuple(chain), subjects=(signed,),
                    expiry=float(expiry) if expiry is not None else None)


def _rfc3339(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError as exc:
        raise Malformed(f"the signature expiry {value!r} is not an RFC 3339 time") from exc
