"""Signed, expiring session cookies and CSRF tokens for the web UI.

A session is `v1.<kind>.<name>.<expires>.<nonce>.<mac>`: an HMAC-SHA256 over the rest with a
key every worker and node reads from the database (`AuthService.shared_secret`), so any process
verifies any session without a row per sign-in or a write per request. The account is re-read
on every request (a disabled user loses the UI at once); signing out drops the cookie.
A CSRF token is an HMAC of the visitor's random `moorage_csrf` cookie and the principal's name:
a form posted from another site carries neither.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

SESSION_COOKIE = "moorage_session"
CSRF_COOKIE = "moorage_csrf"
CSRF_FIELD = "csrf"
_VERSION = "v1"


@dataclass(frozen=True)
class Session:
    """Who signed in, until when."""

    kind: str
    name: str
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Issues and checks session cookies and CSRF tokens with one secret key."""

    def __init__(self, key: bytes, lifetime: float) -> None:
        self.key = key
        self.lifetime = lifetime

    def _mac(self, *parts: str) -> str:
        return _b64(hmac.new(self.key, "\0".join(parts).encode(), hashlib.sha256).digest())

    def issue(self, kind: str, name: str, now: float | None = None) -> str:
        """A new session cookie value for `name`."""
        expires = int((now or time.time()) + self.lifetime)
        body = [_VERSION, kind, _b64(name.encode()), str(expires), secrets.token_urlsafe(12)]
        return ".".join([*body, self._mac("session", *body)])

    def verify(self, value: str | None, now: float | None = None) -> Session | None:
        """The session a cookie value carries; None if it is forged, malformed or expired."""
        if not value or len(value) > 1024:
            return None
        parts = value.split(".")
        if len(parts) != 6 or parts[0] != _VERSION:
            return None
        if not hmac.compare_digest(parts[5], self._mac("session", *parts[:5])):
            return None
        try:
            name = _unb64(parts[2]).decode()
            expires = float(parts[3])
        except (ValueError, UnicodeDecodeError):
            return None
        if expires <= (now or time.time()):
            return None
        return Session(parts[1], name, expires)

    def csrf_token(self, nonce: str, principal: str) -> str:
        """The token forms of this visitor (their CSRF cookie) signed in as `principal` carry."""
        return self._mac("csrf", nonce, principal)

    def csrf_ok(self, nonce: str | None, principal: str, token: str | None) -> bool:
        """Whether a posted token belongs to this visitor and principal."""
        if not nonce or not token:
            return False
        return hmac.compare_digest(token, self.csrf_token(nonce, principal))


    def seal(self, purpose: str, fields: list[str], ttl: float, now: float | None = None) -> str:
        """A signed value carrying `fields` for `purpose`, good for `ttl` seconds."""
        body = [_VERSION, _b64("\0".join(fields).encode()), str(int((now or time.time()) + ttl))]
        return ".".join([*body, self._mac("sealed", purpose, *body)])

    def unseal(self, purpose: str, value: str | None, now: float | None = None
               ) -> list[str] | None:
        """The fields of a value `seal` made for `purpose`; None if forged, other or expired."""
        parts = (value or "").split(".")
        if len(value or "") > 2048 or len(parts) != 4 or parts[0] != _VERSION:
            return None
        if not hmac.compare_digest(parts[3], self._mac("sealed", purpose, *parts[:3])):
            return None
        try:
            if float(parts[2]) <= (now or time.time()):
                return None
            return _unb64(parts[1]).decode().split("\0")
        except (ValueError, UnicodeDecodeError):
            return None


def new_nonce() -> str:
    """A fresh random value for the CSRF cookie."""
    return secrets.token_urlsafe(24)
