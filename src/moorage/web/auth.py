"""HTTP side of access control: credentials from headers, challenges, and
the one place a refusal is audited (`audit_denial`); the decisions are auth/authorizer.py's."""

from __future__ import annotations

import asyncio
import base64
import binascii

from aiohttp import web

from ..auth.authorizer import SERVER, Action, Authorizer, OpenAuthorizer
from ..auth.authorizer import repository as repo_resource
from ..auth.scopes import DELETE, PULL, PUSH
from ..auth.service import ANONYMOUS, AuthService, Principal
from ..auth.tokens import InvalidToken, TokenAuthority
from ..events.audit import AuditLog
from ..events.types import AccessDenied, Actor
from ..oci.errors import RegistryError, Unauthorized
from .metrics import login_failed

_CHALLENGE_ACTIONS = {PULL: "pull", PUSH: "pull,push", DELETE: "delete"}


def parse_basic(header: str) -> tuple[str, str] | None:
    """(username, password) from a Basic Authorization header value, or None."""
    try:
        decoded = base64.b64decode(header.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep and username else None


async def audit_denial(
    audit: AuditLog, request: web.Request, exc: RegistryError, action: str | None,
    repository: str | None, actor: str | None, actor_kind: str | None = None,
    resource: str | None = None,
) -> None:
    """Record one refused request (`access.<action>`, outcome denied) with its reason."""
    detail = {"code": exc.code, "status": exc.status, "reason": exc.message,
              "method": request.method, "path": request.path[:300]}
    if resource is not None:
        detail["resource"] = resource
    # A denial changes nothing: its event is a write of its own.
    await audit.outbox.emit_async(AccessDenied(
        actor=Actor(actor, actor_kind, request.remote), repository=repository,
        action=action or "login", detail=detail,
    ))


class AccessGuard:
    """Authenticates each /v2/ request and asks the Authorizer for what the route needs."""

    def __init__(
        self,
        auth: AuthService,
        authorizer: Authorizer,
        authority: TokenAuthority,
        audit: AuditLog,
        realm: str | None,
    ) -> None:
        self.auth = auth
        self.authorizer = authorizer
        self.authority = authority
        self.audit = audit
        self.realm = realm

    def _realm(self, request: web.Request) -> str:
        return self.realm or f"{request.scheme}://{request.host}/token"

    def challenge(
        self,
        request: web.Request,
        repository: str | None,
        action: str | None,
        message: str = "authentication required",
        error: str | None = None,
        also: tuple[str, str] | None = None,
    ) -> Unauthorized:
        """A 401 with the `WWW-Authenticate: Bearer` challenge clients follow to the token endpoint.

        `also` (repository, action) adds a second scope, as a mount asks for pull on `from`.
        """
        parts = [f'realm="{self._realm(request)}"', f'service="{self.authority.service}"']
        if repository is not None and action in _CHALLENGE_ACTIONS:
            scopes = [f"repository:{repository}:{_CHALLENGE_ACTIONS[action]}"]
            if also is not None:
                scopes.append(f"repository:{also[0]}:{_CHALLENGE_ACTIONS[also[1]]}")
            parts.append(f'scope="{" ".join(scopes)}"')
        elif action == "catalog":
            parts.append('scope="registry:catalog:*"')
        if error:
            parts.append(f'error="{error}"')
        return Unauthorized(message, headers={"WWW-Authenticate": "Bearer " + ",".join(parts)})

    async def check(
        self, request: web.Request, repository: str | None, action: str | None
    ) -> Principal:
        """Authenticate the request and authorise `action` on `repository` (None: just authenticate)."""
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        try:
            if scheme == "bearer":
                principal = await self._check_bearer(request, credentials, repository, action)
            elif scheme == "basic":
                principal = await self._check_basic(request, credentials, repository, action)
            else:
                raise self.challenge(request, repository, action)
            if action == PUSH and repository is not None and not self.auth.namespace_known(
                repository
            ):
                await asyncio.to_thread(self.auth.ensure_namespace, principal, repository,
                                        self.authorizer)
        except RegistryError as exc:
            if header or repository is not None:
                await audit_denial(self.audit, request, exc, action, repository,
                                   self._claimed_actor(request))
            raise
        request["principal"] = principal
        return principal

    async def _check_bearer(
        self, request: web.Request, token: str, repository: str | None, action: str | None
    ) -> Principal:
        try:
            claims = self.authority.verify(token.strip())
        except InvalidToken:
            raise self.challenge(request, repository, action, "invalid or expired token",
                                 error="invalid_token") from None
        principal = Principal(claims.kind, claims.subject)
        if repository is None or action is None:
            if action == "catalog":
                if not claims.allows("registry", "catalog", "*"):
                    raise self.challenge(request, None, action, "token does not grant the catalog",
                                         error="insufficient_scope")
                return await asyncio.to_thread(
                    self.auth.principal_from_claims, claims.kind, claims.subject
                )
            return principal
        if claims.allows("repository", repository, action):
            return principal
        # The token does not carry this access: a new token could (401, the client asks for
        # one), unless the caller would not get it anyway (403). An OIDC workload's rights are
        # decided only when it exchanges an ID token, so it is always told to ask again.
        if not principal.anonymous and principal.kind != "oidc":
            full = await asyncio.to_thread(
                self.auth.principal_from_claims, claims.kind, claims.subject
            )
            await asyncio.to_thread(self.authorizer.require, full, action,
                                    repo_resource(repository))
        raise self.challenge(request, repository, action, "token does not grant this access",
                             error="insufficient_scope")

    async def _check_basic(
        self, request: web.Request, credentials: str, repository: str | None, action: str | None
    ) -> Principal:
        parsed = parse_basic(credentials)
        if parsed is None:
            raise self.challenge(request, repository, action, "malformed basic credentials")
        try:
            principal = await self.auth.login(parsed[0], parsed[1], request.remote)
        except Unauthorized as exc:
            login_failed()
            raise self.challenge(request, repository, action, exc.message) from None
        if repository is not None and action in (PULL, PUSH, DELETE):
            await asyncio.to_thread(self.authorizer.require, principal, action,
                                    repo_resource(repository))
        elif action == Action.CATALOG:
            self.authorizer.require(principal, Action.CATALOG, SERVER)
        return principal

    async def may_lend(self, request: web.Request, target: str, source: str) -> bool:
        """Whether a mount into `target` may take a blob from `source` (pull on it).

        A bearer token that lacks pull on `source`, of a caller who could be granted it, gets
        Distribution's answer: 401 with a challenge naming both scopes, so the client fetches a
        wider token and mounts. A caller who may not read `source` falls back to an upload (the
        refusal is audited); so does an anonymous one.
        """
        principal = request.get("principal")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and principal is not None and not principal.anonymous:
            try:
                claims = self.authority.verify(token.strip())  # verified for the target already
            except InvalidToken:
                return False
            if not claims.allows("repository", source, PULL):
                full = await asyncio.to_thread(
                    self.auth.principal_from_claims, claims.kind, claims.subject
                )
                if await asyncio.to_thread(self.authorizer.allows, full, Action.PULL,
                                           repo_resource(source)):
                    raise self.challenge(
                        request, target, PUSH, "the token does not grant pull on the mount source",
                        error="insufficient_scope", also=(source, PULL),
                    )
        try:
            await self.check(request, source, PULL)
        except RegistryError:
            return False
        return True

    def _claimed_actor(self, request: web.Request) -> str | None:
        """Who the credentials of a denied request name (a verified token's subject only)."""
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "basic":
            parsed = parse_basic(credentials)
            return parsed[0][:160] if parsed else None
        if scheme.lower() == "bearer":
            try:
                return self.authority.verify(credentials.strip()).subject[:160]
            except InvalidToken:
                return None
        return None

    async def lenders(self, request: web.Request, repositories: list[str]) -> list[str]:
        """Those of `repositories` this request's credentials may pull from: the candidates of
        a mount without `from`. Filtering, not refusing: the caller named none of them, so
        none is audited as denied (the mount simply falls back to an upload)."""
        principal = request.get("principal")
        if principal is None or principal.anonymous:
            return []
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            # A token lends only what it carries, as a pull with it would.
            try:
                claims = self.authority.verify(token.strip())
            except InvalidToken:
                return []
            return [r for r in repositories if claims.allows("repository", r, PULL)]
        return await asyncio.to_thread(
            lambda: [r for r in repositories
                     if self.authorizer.allows(principal, Action.PULL, repo_resource(r))]
        )


class OpenAccess:
    """The guard's twin with authentication off (`--no-auth`): every request may do anything."""

    def __init__(self) -> None:
        self.authorizer = OpenAuthorizer()

    async def check(
        self, request: web.Request, repository: str | None, action: str | None
    ) -> Principal:
        """Nothing to check: the caller stays unnamed (the audit log records no actor)."""
        return ANONYMOUS

    async def may_lend(self, request: web.Request, target: str, source: str) -> bool:
        """Any repository lends to any other."""
        return self.authorizer.allows(ANONYMOUS, Action.PULL, repo_resource(source))

    async def lenders(self, request: web.Request, repositories: list[str]) -> list[str]:
        """Every repository holding the blob may lend it."""
        return [r for r in repositories
                if self.authorizer.allows(ANONYMOUS, Action.PULL, repo_resource(r))]
