"""Single sign-on to the web UI with a generic OpenID Connect provider.

The authorization code flow with PKCE (S256), `state` and `nonce` (kept by the web layer in a
short signed cookie); the provider's `/.well-known/openid-configuration` is fetched with a
timeout and a size cap and cached; the ID token from the token endpoint is checked for its
signature (the provider's JWKS, auth/jwks.py), iss, aud (the client id), exp, iat and nonce.
The account is the one `ui_oidc_username_claim` names. An unknown account is created only when
`ui_oidc_create_users` is on, as a plain user with no namespace role and an unusable password;
robots never sign in. With `ui_oidc_admin_group`, the `groups` claim decides at every SSO
sign-in whether the account is a server admin (granted and revoked).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jwt

from ..oci.errors import Unauthorized
from .jwks import ASYMMETRIC, JwksCache, JwksError, fetch_document
from .oidc import Refused, decode_id_token
from .service import OIDC_USERNAME, ROBOT_PREFIX, USERNAME_RE

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config import Settings
    from .admin import AdminService
    from .identity import Principal
    from .service import AuthService

WELL_KNOWN = "/.well-known/openid-configuration"
GROUPS_CLAIM = "groups"
SCOPES = "openid profile email"


class SsoRefused(Unauthorized):
    """A single sign-on that is not accepted, saying why."""

    def __init__(self, message: str) -> None:
        super().__init__(f"single sign-on refused: {message}")


@dataclass(frozen=True)
class Flow:
    """What one sign-in must find again at the callback."""

    state: str
    nonce: str
    verifier: str  # the PKCE code verifier

    @classmethod
    def new(cls) -> Flow:
        """Fresh random values."""
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        """The S256 code challenge of the verifier."""
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class SsoService:
    """The UI's OIDC relying party: builds the authorization redirect, redeems the code and
    turns a verified ID token into the account it names."""

    def __init__(self, settings: Settings, auth: AuthService, admin: AdminService,
                 fetch: Callable[..., bytes] = fetch_document) -> None:
        self.settings = settings
        self.auth = auth
        self.admin = admin
        self._fetch = fetch
        s = settings
        self.jwks = JwksCache(timeout=s.oidc_jwks_timeout, ttl=s.oidc_jwks_cache_seconds,
                              refresh_interval=s.oidc_jwks_refresh_interval)
        self._discovered: tuple[float, dict[str, Any]] | None = None

    @property
    def enabled(self) -> bool:
        """Whether a provider is configured."""
        return bool(self.settings.ui_oidc_issuer and self.settings.ui_oidc_client_id)

    @property
    def issuer(self) -> str:
        return str(self.settings.ui_oidc_issuer or "").rstrip("/")

    def discovery(self) -> dict[str, Any]:
        """The provider's metadata (cached `oidc_jwks_cache_seconds`); SsoRefused when it
        cannot be read or names another issuer."""
        now = time.monotonic()
        if self._discovered and now < self._discovered[0]:
            return self._discovered[1]
        try:
            doc = json.loads(self._fetch(self.issuer + WELL_KNOWN,
                                         self.settings.oidc_jwks_timeout))
        except (JwksError, ValueError, UnicodeDecodeError) as exc:
            raise SsoRefused(f"the provider's discovery document is unavailable ({exc})"
                             ) from None
        if not isinstance(doc, dict) or str(doc.get("issuer", "")).rstrip("/") != self.issuer:
            raise SsoRefused("the provider's discovery document names another issuer")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(key), str):
                raise SsoRefused(f"the provider's discovery document has no {key}")
        self._discovered = (now + self.settings.oidc_jwks_cache_seconds, doc)
        return doc

    def authorization_url(self, redirect_uri: str, flow: Flow) -> str:
        """Where the browser goes to sign in at the provider."""
        endpoint = self.discovery()["authorization_endpoint"]
        query = urlencode({
            "response_type": "code", "client_id": self.settings.ui_oidc_client_id,
            "redirect_uri": redirect_uri, "scope": SCOPES, "state": flow.state,
            "nonce": flow.nonce, "code_challenge": flow.challenge,
            "code_challenge_method": "S256"})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def finish(self, code: str, redirect_uri: str, flow: Flow) -> Principal:
        """Redeem the code, verify the ID token and return the account it signs in."""
        claims = self.verify(self._redeem(code, redirect_uri, flow), flow.nonce)
        name = claims.get(self.settings.ui_oidc_username_claim)
        if not isinstance(name, str) or not name:
            raise SsoRefused(f"the ID token has no {self.settings.ui_oidc_username_claim!r}")
        if name.startswith(ROBOT_PREFIX):
            raise SsoRefused("robot accounts cannot sign in to the web UI")
        if not USERNAME_RE.match(name) or name in ("cli", OIDC_USERNAME):
            raise SsoRefused(f"{name[:64]!r} is not a valid account name")
        admin: bool | None = None
        if self.settings.ui_oidc_admin_group:
            groups = claims.get(GROUPS_CLAIM)
            admin = isinstance(groups, list) and self.settings.ui_oidc_admin_group in groups
        found = self.admin.sso_account(name, self.settings.ui_oidc_create_users, admin,
                                       self.issuer)
        if not found:
            raise SsoRefused(f"there is no account {name!r} (ask an admin to create it)")
        principal = self.auth.principal_from_claims("user", name)
        return principal

    def _redeem(self, code: str, redirect_uri: str, flow: Flow) -> str:
        s = self.settings
        fields = {"grant_type": "authorization_code", "code": code,
                  "redirect_uri": redirect_uri, "client_id": s.ui_oidc_client_id or "",
                  "code_verifier": flow.verifier}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if s.ui_oidc_client_secret:  # client_secret_basic, the method every provider supports
            pair = f"{_form(s.ui_oidc_client_id or '')}:{_form(s.ui_oidc_client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            body = self._fetch(self.discovery()["token_endpoint"], s.oidc_jwks_timeout,
                               data=urlencode(fields).encode(), headers=headers)
            answer = json.loads(body)
        except (JwksError, ValueError, UnicodeDecodeError) as exc:
            raise SsoRefused(f"the provider did not redeem the code ({exc})") from None
        token = answer.get("id_token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise SsoRefused("the provider's answer has no id_token")
        return token

    def verify(self, token: str, nonce: str) -> dict[str, Any]:
        """The claims of an ID token of this provider for this client with this nonce."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise SsoRefused("the ID token is not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in ASYMMETRIC:
            raise SsoRefused(f"algorithm {str(alg)[:20]!r} is not accepted")
        kid = str(kid) if kid is not None else None
        try:
            candidates = self.jwks.url(self.discovery()["jwks_uri"], kid).candidates(kid, alg)
        except JwksError as exc:
            raise SsoRefused(f"the provider's keys are unavailable ({exc})") from None
        if not candidates:
            raise SsoRefused(f"no key of the provider fits {alg} (kid {str(kid)[:64]!r})")
        client = self.settings.ui_oidc_client_id or ""
        try:
            claims = decode_id_token(token, alg, candidates, self.discovery()["issuer"], client,
                                     self.settings.oidc_leeway)
        except Refused as exc:
            raise SsoRefused(exc.reason) from None
        if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(
                claims["nonce"], nonce):
            raise SsoRefused("the ID token's nonce is not this sign-in's")
        azp = claims.get("azp")
        if azp is not None and azp != client:
            raise SsoRefused("the ID token was issued to another client (azp)")
        return claims


def _form(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
