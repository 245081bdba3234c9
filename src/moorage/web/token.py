"""The token endpoint: `GET /token` (Docker token spec) and `POST /token` (OAuth2 grants).

An OIDC ID token is exchanged here as the password of the user `oidc` (Basic or the password
grant) or as RFC 8693's `subject_token`; the token issued is the registry's normal one, with no
refresh token (a workload exchanges a fresh ID token instead)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from ..auth.authorizer import Authorizer
from ..auth.scopes import parse_scopes
from ..auth.service import ANONYMOUS, OIDC_USERNAME, AuthService, Principal
from ..auth.tokens import InvalidToken, TokenAuthority
from ..events.audit import AuditLog
from ..oci.errors import RegistryError, Unauthorized
from .auth import parse_basic
from .metrics import login_failed, token_issued

if TYPE_CHECKING:
    from .ratelimit import RateGate

REFRESH_TOKEN_TTL = 30 * 24 * 3600
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
# RFC 8693 subject token types an OIDC ID token may be presented as (absent: the same).
SUBJECT_TOKEN_TYPES = ("urn:ietf:params:oauth:token-type:id_token",
                       "urn:ietf:params:oauth:token-type:jwt")
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class TokenEndpoint:
    """`GET /token` (Docker token spec) and `POST /token` (OAuth2 password / refresh grants)."""

    def __init__(self, auth: AuthService, authorizer: Authorizer, authority: TokenAuthority,
                 audit: AuditLog, gate: RateGate | None = None) -> None:
        self.gate = gate
        self.auth = auth
        self.authorizer = authorizer
        self.authority = authority
        self.audit = audit

    async def get(self, request: web.Request) -> web.Response:
        principal = ANONYMOUS
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "basic":
            parsed = parse_basic(credentials)
            if parsed is None:
                raise Unauthorized("malformed basic credentials")
            await self._charge(request, parsed[0])
            principal = await self._login(request, parsed[0], parsed[1])
        elif header:
            raise Unauthorized("the token endpoint takes basic credentials")
        else:
            await self._charge(request, None)
        scopes = request.query.getall("scope", [])
        body = await self._issue(request, principal, scopes)
        if request.query.get("offline_token") == "true" and _refreshable(principal):
            body["refresh_token"] = self._refresh_token(principal)
        return web.json_response(body)

    async def post(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        await self._charge(request, str(form.get("username", "")) if grant == "password" else None)
        if grant == "password":
            principal = await self._login(
                request, str(form.get("username", "")), str(form.get("password", ""))
            )
        elif grant == TOKEN_EXCHANGE:
            token_type = str(form.get("subject_token_type", SUBJECT_TOKEN_TYPES[0]))
            if token_type not in SUBJECT_TOKEN_TYPES:
                raise RegistryError(f"subject_token_type must be one of "
                                    f"{', '.join(SUBJECT_TOKEN_TYPES)}")
            principal = await self._login(request, OIDC_USERNAME,
                                          str(form.get("subject_token", "")))
        elif grant == "refresh_token":
            try:
                claims = self.authority.verify(str(form.get("refresh_token", "")), "refresh")
            except InvalidToken:
                raise Unauthorized("invalid refresh token") from None
            if claims.kind == "oidc":  # never issued; refused should one ever be
                raise Unauthorized("OIDC tokens are not refreshed: exchange a new ID token")
            principal = await asyncio.to_thread(
                self.auth.principal_from_claims, claims.kind, claims.subject
            )
        else:
            raise RegistryError(f"grant_type must be password, refresh_token or {TOKEN_EXCHANGE}")
        body = await self._issue(request, principal, [str(form.get("scope", ""))])
        if grant == TOKEN_EXCHANGE:
            body.update(issued_token_type=ACCESS_TOKEN_TYPE, token_type="Bearer")
        if grant == "password" and form.get("access_type") == "offline" \
                and _refreshable(principal):
            body["refresh_token"] = self._refresh_token(principal)
        elif grant == "refresh_token":
            body["refresh_token"] = str(form.get("refresh_token"))
        return web.json_response(body)

    async def _charge(self, request: web.Request, claimed: str | None) -> None:
        # Before the password is checked: a limited caller costs no hashing either.
        if self.gate is not None:
            await self.gate.login(request, claimed or None)

    async def _login(self, request: web.Request, username: str, password: str) -> Principal:
        # The Login event (success or denied) commits with the throttle's change.
        try:
            return await self.auth.login(username, password, request.remote, record=True)
        except Unauthorized:
            login_failed()
            raise

    async def _issue(self, request: web.Request, principal: Principal, scopes: list[str]) -> dict:
        granted = await asyncio.to_thread(self.authorizer.grant, principal, parse_scopes(scopes))
        token, lifetime = self.authority.issue(principal.name, principal.kind, granted)
        token_issued()
        return {
            "token": token,
            "access_token": token,
            "expires_in": lifetime,
            "issued_at": datetime.fromtimestamp(time.time(), UTC).isoformat(),
            "scope": " ".join(str(s) for s in granted),
        }

    def _refresh_token(self, principal: Principal) -> str:
        token, _ = self.authority.issue(principal.name, principal.kind, [],
                                        ttl=REFRESH_TOKEN_TTL, token_type="refresh")
        return token


def _refreshable(principal: Principal) -> bool:
    """Whether the caller may get a refresh token (an OIDC workload exchanges a new ID token)."""
    return not principal.anonymous and principal.kind != "oidc"
