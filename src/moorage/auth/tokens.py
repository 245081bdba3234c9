"""Signed bearer tokens (JWT, ES256, with `kid`) as the Docker token spec describes them."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .scopes import Scope

ALGORITHM = "ES256"
ISSUER = "moorage"
CACHE_SIZE = 4096


def generate_signing_key() -> bytes:
    """A new P-256 private key in PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def warm_up() -> None:
    """Sign and verify one throwaway token: OpenSSL sets up its EC tables (several MiB) on first
    use, and doing that before the workers fork lets them share those tables."""
    authority = TokenAuthority(generate_signing_key(), service="warm-up", ttl=60)
    token, _ = authority.issue("warm-up", "user", [])
    authority.verify(token)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified access token says."""

    subject: str
    kind: str  # user | robot | anonymous
    access: tuple[Scope, ...]
    expires_at: float

    def allows(self, type_: str, name: str, action: str) -> bool:
        return any(
            s.type == type_ and s.name == name and (action in s.actions or "*" in s.actions)
            for s in self.access
        )


class InvalidToken(Exception):
    """The token is malformed, expired, not ours, or tampered with."""


class TokenAuthority:
    """Issues and verifies tokens with one signing key shared by every node."""

    def __init__(self, private_pem: bytes, service: str, ttl: float) -> None:
        private = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise TypeError("the token signing key is not an EC private key")
        self._private = private
        public = private.public_key()
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
        self._public = public
        self.service = service
        self.ttl = ttl
        self._cache: OrderedDict[str, TokenClaims] = OrderedDict()

    def issue(self, subject: str, kind: str, access: list[Scope], ttl: float | None = None,
              token_type: str = "access") -> tuple[str, float]:
        """A signed token and its lifetime in seconds."""
        now = int(time.time())
        lifetime = int(ttl or self.ttl)
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": subject,
            "aud": self.service,
            "iat": now,
            "nbf": now - 1,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "kind": kind,
            "typ": token_type,
            "access": [s.claim() for s in access],
        }
        token = jwt.encode(claims, self._private, algorithm=ALGORITHM,
                           headers={"kid": self.kid})
        return token, lifetime

    def verify(self, token: str, token_type: str = "access") -> TokenClaims:
        """Check signature, algorithm, issuer, audience, expiry and type; raise InvalidToken."""
        cached = self._cache.get(token)
        if cached is not None and token_type == "access":
            if cached.expires_at > time.time():
                return cached
            self._cache.pop(token, None)
        try:
            header = jwt.get_unverified_header(token)
            if header.get("kid") != self.kid:
                raise InvalidToken("unknown signing key")
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=self.service,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        if claims.get("typ", "access") != token_type:
            raise InvalidToken("wrong token type")
        access = []
        for entry in claims.get("access") or []:
            if isinstance(entry, dict) and isinstance(entry.get("actions"), list):
                access.append(Scope(str(entry.get("type")), str(entry.get("name")),
                                    frozenset(str(a) for a in entry["actions"])))
        result = TokenClaims(str(claims["sub"]), str(claims.get("kind", "user")), tuple(access),
                             float(claims["exp"]))
        if token_type == "access":
            self._cache[token] = result
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return result
