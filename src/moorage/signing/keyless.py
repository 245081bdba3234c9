"""Keyless (Fulcio certificate) signatures, offline: the certificate must chain to a Fulcio CA of
the operator's sigstore `trusted_root.json`, name the trusted identity and OIDC issuer, and have
been valid at the signing time that a transparency log of that root (inclusion proof, signed
promise: signing/rekor.py) or a timestamp authority (RFC 3161: signing/timestamps.py) vouches
for. No network."""

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
from .discovery import Envelope, LogEntry
from .timestamps import Authority

ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # the raw issuer URL
ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # a DER UTF8String


@dataclass(frozen=True)
class TrustedRoot:
    """The Fulcio CAs, transparency-log keys and timestamp authorities of a trusted_root.json."""

    authorities: tuple[Authority, ...]
    logs: dict[str, tuple[PublicKey, float, float | None]]  # log id (hex) → key, validity
    timestamp_authorities: tuple[Authority, ...] = ()


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
    """Parse a sigstore trusted_root.json (certificateAuthorities, tlogs, timestampAuthorities)."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        doc = json.loads(data)
        authorities = _authorities(doc.get("certificateAuthorities"))
        stamping = _authorities(doc.get("timestampAuthorities"))
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
    if not authorities or not (logs or stamping):
        raise BadMaterial("the trusted root names no certificate authority, or neither a "
                          "transparency log nor a timestamp authority: a CA and one source of "
                          "signing time are needed to verify offline")
    return TrustedRoot(authorities, logs, stamping)


def _authorities(items: Any) -> tuple[Authority, ...]:
    """Certificate chains with their validity (Fulcio CAs, timestamp authorities)."""
    out = []
    for ca in items or []:
        certs = tuple(x509.load_der_x509_certificate(_b64(c.get("rawBytes"), "a CA cert"))
                      for c in (ca.get("certChain") or {}).get("certificates") or [])
        valid = ca.get("validFor") or {}
        if certs:
            out.append(Authority(certs, _time(valid.get("start")) or 0.0,
                                 _time(valid.get("end"))))
    return tuple(out)


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


def check_keyless(env: Envelope, root: TrustedRoot, identity: str,
                  issuer: str) -> tuple[str, str] | None:
    """None when the envelope's certificate is trusted for `identity`/`issuer` at every
    trusted signing time (log promise, RFC 3161 timestamp); else (outcome code, sentence)."""
    assert env.certificate is not None
    try:
        leaf = x509.load_der_x509_certificate(env.certificate)
    except ValueError:
        return "malformed", "its certificate is not DER"
    names, cert_issuer = identity_of(leaf)
    if identity not in names or cert_issuer != issuer:
        return "untrusted-identity", (f"it was signed by {', '.join(names) or 'no identity'} "
                                      f"(issuer {cert_issuer or 'unknown'}), not the trusted "
                                      f"{identity} (issuer {issuer})")
    times = signing_times(env, root)
    if isinstance(times, str):
        return "untrusted-log", times
    for when in times:
        problem = _chain_at(leaf, when, root)
        if problem is not None:
            return problem
    return None


def _chain_at(leaf: x509.Certificate, when: float, root: TrustedRoot) -> tuple[str, str] | None:
    at = datetime.fromtimestamp(when, UTC)
    last = None
    for authority in root.authorities:
        if when < authority.start or (authority.end is not None and when > authority.end):
            continue
        last = check_chain([leaf], list(authority.certs), now=at)
        if last is None:
            return None
    if last is not None and last.code == "expired":
        return "expired", (last.message.split(": sign again")[0] +
                           f", but it was signed at {at:%Y-%m-%d %H:%M:%S} UTC (by the log or "
                           f"timestamp): sign again")
    return "untrusted-chain", ("its certificate does not chain to a Fulcio authority of the "
                               "trusted root valid when it was signed")


def signing_times(env: Envelope, root: TrustedRoot) -> list[float] | str:
    """The trusted times the signature existed at (Unix seconds), or why there is none.

    A root that names transparency logs requires an entry of one of them that records this
    signature and proves it (inclusion proof up to a signed checkpoint; a v0.1 bundle or
    cosign's bundle annotation may give the log's signed promise instead). The log's
    integratedTime counts only under its signed promise; RFC 3161 timestamps of the root's
    authorities count too. At least one time is required."""
    from .rekor import LogProblem
    from .timestamps import TimestampProblem, timestamp_time

    problems: list[str] = []
    times: list[float] = []
    proven = False
    for entry in env.log_entries:
        try:
            when = _check_entry(entry, env, root)
        except LogProblem as exc:
            problems.append(str(exc))
            continue
        proven = True
        if when is not None:
            times.append(float(when))
    for token in env.timestamps:
        try:
            times.append(timestamp_time(token, env.signature, root.timestamp_authorities))
        except TimestampProblem as exc:
            problems.append(str(exc))
    if root.logs and not proven:
        if problems:
            return problems[0]
        return ("it carries no transparency-log entry, and the trusted root names a log: sign "
                "with the log (cosign's default), or trust a root without `tlogs` for a "
                "deployment without Rekor (an RFC 3161 timestamp is then required)")
    if not times:
        if problems:
            return problems[0]
        return ("no trusted signing time: its log entry has no signed promise "
                "(inclusionPromise) and it carries no RFC 3161 timestamp of an authority of the "
                "trusted root")
    return times


def _check_entry(entry: LogEntry, env: Envelope, root: TrustedRoot) -> int | None:
    """The entry's integrated time when the log promised it, None when only proven; raises
    LogProblem when the entry does not hold."""
    from .rekor import LogProblem, check_body, check_inclusion, set_payload

    log = root.logs.get(entry.log_id)
    if log is None:
        raise LogProblem(f"it was logged by log {entry.log_id[:16]}…, which the trusted root "
                         f"does not name")
    key, start, end = log
    try:
        body = base64.b64decode(entry.body, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise LogProblem("its log entry body is not base64") from exc
    assert env.certificate is not None
    check_body(body, env.signature, env.certificate, env.artifact)
    if entry.proof is not None:
        check_inclusion(body, entry.proof, entry.log_id, key)
    elif entry.needs_proof:
        raise LogProblem("its log entry has no inclusion proof (a v0.2+ bundle must carry "
                         "one): bundle it again with a current cosign")
    if entry.signed_entry_timestamp is None:
        if entry.proof is None:
            raise LogProblem("its log entry has neither an inclusion proof nor a signed promise")
        return None
    payload = set_payload(entry.body, entry.integrated_time, entry.log_id, entry.log_index)
    if not verify_raw(key, entry.signed_entry_timestamp, payload):
        raise LogProblem(f"its log entry's signed promise (SET) does not verify with the key "
                         f"of log {entry.log_id[:16]}…: the entry was altered")
    if entry.integrated_time < start or (end is not None and entry.integrated_time > end):
        raise LogProblem(f"it was logged at {entry.integrated_time}, outside the validity of "
                         f"the log's key in the trusted root")
    return entry.integrated_time


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

