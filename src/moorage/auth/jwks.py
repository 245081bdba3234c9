"""JSON Web Key Sets of OIDC issuers: parsed to public keys, fetched with limits, cached.

Only asymmetric keys are kept (RSA of 2048 bits or more, EC P-256/384/521, Ed25519/Ed448): a
symmetric (`oct`) key in a set is ignored, so no token can be checked with a shared secret.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

MAX_JWKS_BYTES = 1 << 20
MIN_RSA_BITS = 2048
# Signature algorithms a token may name: asymmetric only (never `none`, never HS*).
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                        "ES256", "ES384", "ES512", "EdDSA"})
_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
PARSED_CACHE = 256


class JwksError(Exception):
    """A key set that cannot be used (unreadable, too large, no usable key), with why."""


@dataclass(frozen=True, slots=True)
class Jwk:
    """One public key of a set: its `kid`, the `alg` it is pinned to (if any), the key."""

    kid: str | None
    alg: str | None
    key: Any  # a cryptography public key

    def fits(self, alg: str) -> bool:
        """Whether a token signed with `alg` may be checked with this key."""
        if self.alg is not None and self.alg != alg:
            return False
        key = self.key
        if alg[:2] in ("RS", "PS"):
            return isinstance(key, rsa.RSAPublicKey)
        if alg in _CURVES:
            return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _CURVES[alg]
        if alg == "EdDSA":
            return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
        return False


@dataclass(frozen=True, slots=True)
class KeySet:
    """The usable keys of one JWKS document."""

    keys: tuple[Jwk, ...]

    def candidates(self, kid: str | None, alg: str) -> list[Jwk]:
        """The keys that may have signed a token with this `kid` (None: any) and `alg`."""
        return [k for k in self.keys if (kid is None or k.kid == kid) and k.fits(alg)]

    def has_kid(self, kid: str | None) -> bool:
        return kid is None or any(k.kid == kid for k in self.keys)


def parse_jwks(document: str | bytes) -> KeySet:
    """The usable public keys of a JWKS document; JwksError when it has none."""
    if len(document) > MAX_JWKS_BYTES:
        raise JwksError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
    try:
        data = json.loads(document)
    except (ValueError, UnicodeDecodeError):
        raise JwksError("the JWKS is not JSON") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise JwksError('the JWKS has no "keys" list')
    keys = [k for k in (_key(e) for e in entries if isinstance(e, dict)) if k is not None]
    if not keys:
        raise JwksError("the JWKS has no usable public key (RSA >= 2048 bits, EC or OKP)")
    return KeySet(tuple(keys))


def _key(entry: dict[str, Any]) -> Jwk | None:
    if entry.get("kty") not in ("RSA", "EC", "OKP") or entry.get("use", "sig") != "sig":
        return None
    alg = entry.get("alg")
    if alg is not None and alg not in ASYMMETRIC:
        return None
    try:
        key = jwt.PyJWK(entry).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    if hasattr(key, "public_key"):  # a private key in a public set: keep its public half only
        key = key.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return None
    kid = entry.get("kid")
    return Jwk(str(kid) if kid is not None else None, alg, key)


def check_jwks_url(url: str) -> str:
    """`url` when it is https://, or http:// to this machine (tests, a local issuer)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError:
        raise JwksError(f"invalid JWKS URL {url!r}") from None
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and _loopback(host):
        return url
    raise JwksError(f"a JWKS URL must be https:// (http:// only to this machine), got {url!r}")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch_jwks(url: str, timeout: float) -> bytes:
    """The JWKS document at `url`: no redirects, at most MAX_JWKS_BYTES, within ~`timeout`."""
    return fetch_document(url, timeout)


def fetch_document(url: str, timeout: float, data: bytes | None = None,
                   headers: dict[str, str] | None = None) -> bytes:
    """The body at `url` (https://, or http:// to this machine; POSTed when `data` is given):
    no redirects, at most MAX_JWKS_BYTES, within ~`timeout`; JwksError saying why not."""
    import urllib.error
    import urllib.request

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # a redirect is answered as the error it then is

    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(check_jwks_url(url), data=data,
                                     headers={"Accept": "application/json", **(headers or {})})
    deadline = time.monotonic() + timeout
    try:
        with opener.open(request, timeout=timeout) as response:
            chunks, size = [], 0
            while chunk := response.read(64 * 1024):
                size += len(chunk)
                if size > MAX_JWKS_BYTES:
                    raise JwksError(f"{url} sent more than {MAX_JWKS_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise JwksError(f"{url} took more than {timeout:g} s")
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        raise JwksError(f"{url} answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise JwksError(f"cannot fetch {url}: {reason}") from None
    return b"".join(chunks)


@dataclass
class _Fetched:
    keys: KeySet | None
    fetched_at: float  # monotonic time of the last attempt
    good_until: float  # monotonic time after which the keys are fetched again


class JwksCache:
    """Key sets by URL (fetched, kept `ttl` seconds, fetched again at most once per
    `refresh_interval` for an unknown `kid`) and by document (parsed once)."""

    def __init__(self, timeout: float = 5.0, ttl: float = 3600.0, refresh_interval: float = 60.0,
                 fetch: Callable[[str, float], bytes] = fetch_jwks) -> None:
        self.timeout = timeout
        self.ttl = ttl
        self.refresh_interval = refresh_interval
        self._fetch = fetch
        self._by_url: dict[str, _Fetched] = {}
        self._parsed: dict[bytes, KeySet] = {}
        self._lock = threading.Lock()
        self._url_locks: dict[str, threading.Lock] = {}

    def document(self, text: str) -> KeySet:
        """The keys of a stored JWKS document (parsed once per process)."""
        digest = hashlib.sha256(text.encode()).digest()
        keys = self._parsed.get(digest)
        if keys is None:
            keys = parse_jwks(text)
            if len(self._parsed) >= PARSED_CACHE:
                self._parsed.clear()
            self._parsed[digest] = keys
        return keys

    def url(self, url: str, kid: str | None) -> KeySet:
        """The keys at `url`, fetched again when stale or when `kid` is unknown (at most once
        per refresh interval); stale keys are kept when a refetch fails."""
        with self._lock:
            lock = self._url_locks.setdefault(url, threading.Lock())
        with lock:  # one fetch per URL at a time; the others wait for its result
            entry = self._by_url.get(url)
            now = time.monotonic()
            if entry is not None and entry.keys is not None and now < entry.good_until and (
                entry.keys.has_kid(kid) or now - entry.fetched_at < self.refresh_interval
            ):
                return entry.keys
            if entry is not None and now - entry.fetched_at < self.refresh_interval:
                if entry.keys is not None:
                    return entry.keys
                raise JwksError(f"the JWKS at {url} could not be fetched a moment ago")
            try:
                keys = parse_jwks(self._fetch(url, self.timeout))
            except JwksError:
                if entry is None:
                    self._by_url[url] = _Fetched(None, now, now)
                    raise
                entry.fetched_at = now
                if entry.keys is None:
                    raise
                return entry.keys
            self._by_url[url] = _Fetched(keys, now, now + self.ttl)
            return keys
