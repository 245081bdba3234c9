"""Keyless (Fulcio certificate) signatures, offline: the certificate must chain to a Fulcio CA of
the operator's sigstore `trusted_root.json`, name the trusted identity and OIDC issuer, and have
been valid when a transparency log of that root recorded the signature (its signed entry
timestamp is checked with the log's key; no network)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from .crypto import BadMaterial, PublicKey, check_chain, verify_raw
from .discovery import LogEntry

ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # the raw issuer URL
ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # a DER UTF8String


@dataclass(frozen=True)
class Authority:
    certs: tuple[x509.Certificate, ...]
    start: float
    end: float | None


@dataclass(frozen=True)
class TrustedRoot:
    """The Fulcio CAs and transparency-log keys of a sigstore trusted_root.json."""

    authorities: tuple[Authority, ...]
    logs: dict[str, tuple[PublicKey, float, float | None]]  # log id (hex) → key, validity


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise BadMaterial(f"{what} is missing")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadMaterial(f"{what} is not base64") from exc


def _time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value).timestamp()


def load_trusted_root(data: bytes) -> TrustedRoot:
    """Parse a sigstore trusted_root.json (certificateAuthorities and tlogs are used)."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        doc = json.loads(data)
        authorities = []
        for ca in doc.get("certificateAuthorities") or []:
            certs = tuple(x509.load_der_x509_certificate(_b64(c.get("rawBytes"), "a CA cert"))
                          for c in (ca.get("certChain") or {}).get("certificates") or [])
            valid = ca.get("validFor") or {}
            if certs:
                authorities.append(Authority(certs, _time(valid.get("start")) or 0.0,
                                             _time(valid.get("end"))))
        logs: dict[str, tuple[PublicKey, float, float | None]] = {}
        for log in doc.get("tlogs") or []:
            key = log.get("publicKey") or {}
            public = load_der_public_key(_b64(key.get("rawBytes"), "a log key"))
            log_id = _b64((log.get("logId") or {}).get("keyId"), "a log id").hex()
            valid = key.get("validFor") or {}
            logs[log_id] = (public, _time(valid.get("start")) or 0.0,  # type: ignore[assignment]
                            _time(valid.get("end")))
    except (ValueError, AttributeError, TypeError) as exc:
        raise BadMaterial("not a sigstore trusted_root.json (certificateAuthorities, tlogs)") \
            from exc
    if not authorities or not logs:
        raise BadMaterial("the trusted root names no certificate authority or no "
                          "transparency log: both are needed to verify offline")
    return TrustedRoot(tuple(authorities), logs)


def identity_of(cert: x509.Certificate) -> tuple[list[str], str | None]:
    """The certificate's subject alternative names (emails, URIs) and its OIDC issuer."""
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*san.get_values_for_type(x509.RFC822Name),
                 *san.get_values_for_type(x509.UniformResourceIdentifier)]
    except x509.ExtensionNotFound:
        pass
    issuer = None
    for ext in cert.extensions:
        if ext.oid == ISSUER_V2 and isinstance(ext.value, x509.UnrecognizedExtension):
            issuer = _utf8_string(ext.value.value)
        elif ext.oid == ISSUER_V1 and issuer is None and \
                isinstance(ext.value, x509.UnrecognizedExtension):
            issuer = ext.value.value.decode(errors="replace")
    return names, issuer


def _utf8_string(der: bytes) -> str | None:
    """The text of a DER UTF8String (tag 12)."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    if der[1] < 0x80:
        return der[2:2 + der[1]].decode(errors="replace")
    size = der[1] & 0x7F
    length = int.from_bytes(der[2:2 + size], "big")
    return der[2 + size:2 + size + length].decode(errors="replace")


def set_payload(entry: LogEntry) -> bytes:
    """What a log signs as the signed entry timestamp: canonical JSON of the entry."""
    return json.dumps({"body": entry.body, "integratedTime": entry.integrated_time,
                       "logID": entry.log_id, "logIndex": entry.log_index},
                      sort_keys=True, separators=(",", ":")).encode()


def check_keyless(leaf_der: bytes, entries: list[LogEntry], signature: bytes,
                  root: TrustedRoot, identity: str, issuer: str) -> tuple[str, str] | None:
    """None when the certificate is trusted for `identity`/`issuer` at a logged time; else
    (outcome code, sentence)."""
    try:
        leaf = x509.load_der_x509_certificate(leaf_der)
    except ValueError:
        return "malformed", "its certificate is not DER"
    names, cert_issuer = identity_of(leaf)
    if identity not in names or cert_issuer != issuer:
        return "untrusted-identity", (f"it was signed by {', '.join(names) or 'no identity'} "
                                      f"(issuer {cert_issuer or 'unknown'}), not the trusted "
                                      f"{identity} (issuer {issuer})")
    logged = _logged_time(entries, signature, root)
    if logged is None:
        return "untrusted-chain", ("no transparency-log entry of the trusted root records "
                                   "this signature: sign with the log (cosign's default)")
    at = datetime.fromtimestamp(logged, UTC)
    last = None
    for authority in root.authorities:
        if logged < authority.start or (authority.end is not None and logged > authority.end):
            continue
        last = check_chain([leaf], list(authority.certs), now=at)
        if last is None:
            return None
    if last is not None and last.code == "expired":
        return "expired", last.message.replace("sign again", "it was logged outside it")
    return "untrusted-chain", ("its certificate does not chain to a Fulcio authority of the "
                               "trusted root valid when it was logged")


def _logged_time(entries: list[LogEntry], signature: bytes, root: TrustedRoot) -> int | None:
    """The integrated time of the first entry a trusted log signed that records `signature`."""
    for entry in entries:
        log = root.logs.get(entry.log_id)
        if log is None:
            continue
        key, start, end = log
        if entry.integrated_time < start or (end is not None and entry.integrated_time > end):
            continue
        if not verify_raw(key, entry.signed_entry_timestamp, set_payload(entry)):
            continue
        if _records(entry.body, signature):
            return entry.integrated_time
    return None


def _records(body_b64: str, signature: bytes) -> bool:
    """Whether a hashedrekord or dsse log entry body carries `signature`."""
    try:
        body = json.loads(base64.b64decode(body_b64))
        spec = body.get("spec") or {}
        found = [(spec.get("signature") or {}).get("content")]
        found += [s.get("signature") for s in spec.get("signatures") or []
                  if isinstance(s, dict)]
        return any(isinstance(f, str) and base64.b64decode(f) == signature for f in found)
    except (ValueError, AttributeError, TypeError, binascii.Error):
        return False


def root_fingerprint(data: bytes) -> str:
    """SHA-256 hex of the trusted root file as given."""
    return hashlib.sha256(data).hexdigest()


def leaf_public_key(leaf_der: bytes) -> PublicKey | None:
    """The certificate's public key, when of a type we verify."""
    from .crypto import leaf_key

    try:
        return leaf_key([x509.load_der_x509_certificate(leaf_der)])
    except ValueError:
        return None

