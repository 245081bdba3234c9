"""Credentials for the benchmark clients: bearer tokens fetched the way docker fetches them.

The client asks `GET /v2/`, reads the `WWW-Authenticate: Bearer realm=…,service=…` challenge,
then asks the realm for a token with Basic auth and the scope a row needs. Tokens are cached
per scope and fetched again after half their lifetime, or when a request answers 401.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
import time
import urllib.parse

_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """(scheme, params) of a `WWW-Authenticate` header value."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


def _get(url: str, headers: dict[str, str], timeout: float = 30.0) -> tuple[int, dict, bytes]:
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=timeout)
    try:
        c.request("GET", u.path + (f"?{u.query}" if u.query else ""), headers=headers)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


class Credentials:
    """A username and password for one registry, turned into bearer tokens per scope."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.base = base
        self.username = username
        self.password = password
        self._basic = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._challenge: dict[str, str] | None = None
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, refresh after)
        self._lock = threading.Lock()
        self.fetched = 0  # tokens fetched, for the JSON

    def _realm(self) -> dict[str, str]:
        if self._challenge is None:
            st, h, body = _get(self.base + "/v2/", {})
            scheme, params = parse_challenge(h.get("www-authenticate", ""))
            if st != 401 or scheme != "bearer" or "realm" not in params:
                raise RuntimeError(f"GET /v2/ gave {st} without a Bearer challenge: {body[:200]!r}")
            self._challenge = params
        return self._challenge

    def token(self, scope: str | None) -> str:
        """A valid bearer token for `scope` (e.g. `repository:bench/small:pull,push`)."""
        key = scope or ""
        with self._lock:
            cached = self._tokens.get(key)
            if cached and cached[1] > time.monotonic():
                return cached[0]
            ch = self._realm()
            query = {"service": ch.get("service", "")}
            if scope:
                query["scope"] = scope
            url = ch["realm"] + "?" + urllib.parse.urlencode(query)
            st, _, body = _get(url, {"Authorization": f"Basic {self._basic}"})
            if st != 200:
                raise RuntimeError(f"GET {url} -> {st} {body[:300]!r}")
            doc = json.loads(body)
            tok = doc.get("token") or doc["access_token"]
            ttl = float(doc.get("expires_in") or 60)
            self._tokens[key] = (tok, time.monotonic() + ttl / 2)
            self.fetched += 1
            return tok

    def forget(self, scope: str | None) -> None:
        """Drop the cached token of `scope` (it was refused)."""
        with self._lock:
            self._tokens.pop(scope or "", None)

    def headers(self, repo: str | None, actions: str = "pull,push") -> dict[str, str]:
        """The Authorization header for requests on `repo` (None: just `GET /v2/`)."""
        scope = f"repository:{repo}:{actions}" if repo else None
        return {"Authorization": f"Bearer {self.token(scope)}"}
