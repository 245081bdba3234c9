"""The cryptography the verifier needs: loading trusted keys and roots, checking a signature
with a key, and walking an x509 chain up to a trusted root. No I/O, no registry state."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

MIN_RSA_BITS = 2048
HashType = Callable[[], hashes.HashAlgorithm]
_CURVES: dict[str, tuple[str, HashType]] = {"secp256r1": ("ecdsa-p256", hashes.SHA256), "secp384r1": ("ecdsa-p384", hashes.SHA384)}
_HASHES: dict[str, HashType] = {"SHA2_256": hashes.SHA256, "SHA2_384": hashes.SHA384, "SHA2_512": hashes.SHA512}

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class BadMaterial(ValueError):
    """A key or certificate file we cannot use (the message says why and what to give)."""


@dataclass(frozen=True, slots=True)
class LoadedKey:
    key: PublicKey
    algorithm: str
    fingerprint: str  # SHA-256 hex of the SubjectPublicKeyInfo DER
    pem: str


def key_fingerprint(key: Any) -> str:
    """SHA-256 hex of a public key's SubjectPublicKeyInfo DER."""
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def load_public_key(pem: bytes) -> LoadedKey:
    """A PEM public key we accept: ECDSA P-256/P-384, RSA >= 2048 bits, Ed25519."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise BadMaterial("not a PEM public key (-----BEGIN PUBLIC KEY-----, as `cosign "
                          "generate-key-pair` writes cosign.pub)") from exc
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVES:
            raise BadMaterial(f"ECDSA curve {key.curve.name} is not supported: use P-256 or P-384")
        algorithm = _CURVES[key.curve.name][0]
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise BadMaterial(f"an RSA key of {key.key_size} bits is too weak: use "
                              f"{MIN_RSA_BITS} bits or more")
        algorithm = f"rsa-{key.key_size}"
    elif isinstance(key, ed25519.Ed25519PublicKey):
        algorithm = "ed25519"
    else:
        raise BadMaterial("only ECDSA P-256/P-384, RSA and Ed25519 public keys are supported")
    text = key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return LoadedKey(key, algorithm, key_fingerprint(key), text)


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM file (at least one)."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise BadMaterial("not a PEM certificate file (-----BEGIN CERTIFICATE-----)") from exc
    if not certs:
        raise BadMaterial("the file holds no certificate")
    return certs


def cert_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 hex of a certificate's DER (notation's thumbprint, lower case)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def roots_pem(certs: list[x509.Certificate]) -> str:
    """The certificates as one normalised PEM text."""
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def verify_raw(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether `signature` (DER for ECDSA, as cosign writes it) is `key`'s over `data`; RSA is
    tried as PKCS#1 v1.5 then PSS, both SHA-256 (cosign's defaults)."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            # P-384 signers differ (SHA-384 by the curve, or cosign's older SHA-256): try both.
            return any(_ecdsa(key, signature, data, h)
                       for h in dict.fromkeys((_curve_hash(key), _sha256)))
        elif isinstance(key, rsa.RSAPublicKey):
            return _rsa_any(key, signature, data, hashes.SHA256(), hashes.SHA256())
        else:
            key.verify(signature, data)
        return True
    except (InvalidSignature, ValueError):
        return False


def verify_prehashed(key: PublicKey, signature: bytes, digest: bytes, algorithm: str) -> bool:
    """Whether `signature` is `key`'s over a message whose `algorithm` digest is `digest` (a
    sigstore bundle's messageSignature); Ed25519 cannot sign a digest, so False."""
    hash_type = _HASHES.get(algorithm)
    if hash_type is None or isinstance(key, ed25519.Ed25519PublicKey):
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(Prehashed(hash_type())))
            return True
        return _rsa_any(key, signature, digest, Prehashed(hash_type()), hash_type())
    except (InvalidSignature, ValueError):
        return False


def verify_jws(key: PublicKey, alg: str, signature: bytes, signing_input: bytes) -> bool:
    """Whether a JWS `signature` (RFC 7518: raw r||s for ECDSA) made with `alg` is `key`'s."""
    bits: HashType | None = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}.get(alg[2:])
    if bits is None:
        return False
    try:
        if alg.startswith("ES") and isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                       int.from_bytes(signature[size:], "big"))
            key.verify(der, signing_input, ec.ECDSA(bits()))
        elif alg.startswith("PS") and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input,
                       padding.PSS(padding.MGF1(bits()), bits().digest_size), bits())
        elif alg.startswith("RS") and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PKCS1v15(), bits())
        else:
            return False
        return True
    except (InvalidSignature, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class ChainProblem:
    code: str  # untrusted-chain | expired | malformed
    message: str


def check_chain(chain: list[x509.Certificate], roots: list[x509.Certificate],
                now: datetime | None = None) -> ChainProblem | None:
    """None when the chain (leaf first) is well formed, every certificate in it is valid now,
    and it ends at, or is issued by, one of `roots`; else what is wrong."""
    now = now or datetime.now(UTC)
    if not chain:
        return ChainProblem("malformed", "the signature carries no certificate chain")
    for i, cert in enumerate(chain):
        if cert.not_valid_after_utc < now:
            what = "signing certificate" if i == 0 else "certificate"
            return ChainProblem("expired", f"the {what} {_subject(cert)} expired on "
                                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: sign again "
                                f"with a valid certificate")
        if cert.not_valid_before_utc > now:
            return ChainProblem("expired", f"the certificate {_subject(cert)} is not valid "
                                f"before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    if not _for_code_signing(chain[0]):
        return ChainProblem("untrusted-chain", f"the signing certificate {_subject(chain[0])} "
                            f"is not for code signing (its extended key usage): sign with a "
                            f"code-signing certificate")
    for child, parent in itertools.pairwise(chain):
        if not _issued_by(child, parent) or not _is_ca(parent):
            return ChainProblem("untrusted-chain", f"the certificate chain is broken: "
                                f"{_subject(child)} is not issued by {_subject(parent)}")
    trusted = {cert_fingerprint(r) for r in roots}
    if any(cert_fingerprint(c) in trusted for c in chain):
        return None
    top = chain[-1]
    if any(_issued_by(top, r) and _is_ca(r) and r.not_valid_after_utc >= now for r in roots):
        return None
    return ChainProblem("untrusted-chain", f"the certificate chain ({_subject(chain[0])}, "
                        f"issued by {top.issuer.rfc4514_string()}) does not lead to a root "
                        f"certificate trusted for this namespace")


def leaf_key(chain: list[x509.Certificate]) -> PublicKey | None:
    """The signing certificate's public key, when of a type we verify."""
    key = chain[0].public_key()
    return key if isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey,
                                   ed25519.Ed25519PublicKey)) else None


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(no subject)"


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _for_code_signing(cert: x509.Certificate) -> bool:
    """A leaf without extended key usage may sign anything; with one, it must allow code
    signing (the Notary Project's certificate requirements)."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CODE_SIGNING in usages


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _sha256() -> hashes.HashAlgorithm:
    return hashes.SHA256()


def _curve_hash(key: ec.EllipticCurvePublicKey) -> HashType:
    return _CURVES.get(key.curve.name, ("", _sha256))[1]


def _ecdsa(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes,
           hash_type: HashType) -> bool:
    try:
        key.verify(signature, data, ec.ECDSA(hash_type()))
        return True
    except InvalidSignature:
        return False


def _rsa_any(key: rsa.RSAPublicKey, signature: bytes, data: bytes, algorithm: Any,
             inner: hashes.HashAlgorithm) -> bool:
    for pad in (padding.PKCS1v15(), padding.PSS(padding.MGF1(inner), padding.PSS.AUTO)):
        try:
            key.verify(signature, data, pad, algorithm)
            return True
        except InvalidSignature:
            continue
    return False
