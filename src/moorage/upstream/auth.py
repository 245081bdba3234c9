"""How requests to an upstream authenticate: its challenge, a Basic header from our credentials,
and bearer tokens fetched from the realm and cached per scope set until they expire."""

from __future__ import annotations

import base64
import json
import re
import time

import aiohttp
from yarl import URL

from .types import Basic, Credentials, Token, UpstreamError
from .wire import TRANSPORT_ERRORS, raise_for, read_limited

TOKEN_BODY_LIMIT = 1024 * 1024
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` → ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = value.strip().partition(" ")
    params = {k.lower(): (quoted.replace('\\"', '"') if quoted else bare)
              for k, quoted, bare in _PARAM.findall(rest)}
    return scheme.lower(), params


class Authenticator:
    """The Authorization header for each request to one registry, learnt from its 401s."""

    def __init__(self, credentials: Credentials | None) -> None:
        self.credentials = credentials
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._tokens: dict[str, tuple[str, float]] = {}

    def basic_header(self) -> str | None:
        """`Basic …` from username and password credentials; None for others."""
        if isinstance(self.credentials, Basic):
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        return None

    def authorization(self, scopes: tuple[str, ...]) -> str | None:
        """The header to send for `scopes` now, or None when we have nothing to send."""
        if isinstance(self.credentials, Token):
            return "Bearer " + self.credentials.token
        if self._challenge is None:
            return None
        scheme, _ = self._challenge
        if scheme == "basic":
            return self.basic_header()
        cached = self._tokens.get(" ".join(sorted(scopes)))
        if cached and cached[1] > time.monotonic():
            return "Bearer " + cached[0]
        return None

    def needs_token(self, scopes: tuple[str, ...]) -> bool:
        """True when the realm is known and no live token covers `scopes`."""
        if self._challenge is None or self._challenge[0] != "bearer":
            return False
        cached = self._tokens.get(" ".join(sorted(scopes)))
        return cached is None or cached[1] <= time.monotonic()

    async def answer(
        self, session: aiohttp.ClientSession, resp: aiohttp.ClientResponse,
        scopes: tuple[str, ...], sent: str | None,
    ) -> bool:
        """Take a 401's challenge; True (and `resp` released) when the request is worth
        sending again with what it taught us."""
        if isinstance(self.credentials, Token):
            return False
        value = resp.headers.get("WWW-Authenticate", "")
        scheme, params = parse_challenge(value) if value else ("", {})
        retry = scheme == "bearer" or (
            scheme == "basic" and sent is None and self.basic_header() is not None
        )
        if retry:
            resp.release()
            self._challenge = (scheme, params)
            if scheme == "bearer":
                await self.fetch_token(session, scopes, params.get("scope"))
        return retry

    async def fetch_token(
        self, session: aiohttp.ClientSession, scopes: tuple[str, ...], asked: str | None
    ) -> None:
        """GET the token realm (with Basic credentials when we have them) and cache the token
        under the scopes we asked for until it expires."""
        assert self._challenge is not None
        params = self._challenge[1]
        realm = params.get("realm")
        if not realm or URL(realm).scheme not in ("http", "https"):
            raise UpstreamError(401, "UNAUTHORIZED", "the token challenge names no usable realm")
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        wanted = list(scopes)
        for extra in (asked or "").split():
            if extra not in wanted:
                wanted.append(extra)
        query += [("scope", s) for s in wanted]
        headers = {}
        if (basic := self.basic_header()) is not None:
            headers["Authorization"] = basic
        try:
            async with session.get(
                URL(realm).extend_query(query), headers=headers, allow_redirects=False
            ) as resp:
                if resp.status != 200:
                    await raise_for(resp)
                body = await read_limited(resp, TOKEN_BODY_LIMIT, "token response")
        except TRANSPORT_ERRORS as exc:
            raise UpstreamError(0, "UNAVAILABLE", f"token service unreachable: {exc}") from None
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token = None
        if not isinstance(token, str) or not token:
            raise UpstreamError(401, "UNAUTHORIZED", "the token service sent no token")
        lifetime = max(lifetime, 1.0)
        expires = time.monotonic() + lifetime - min(10.0, lifetime / 10)
        self._tokens[" ".join(sorted(scopes))] = (token, expires)
