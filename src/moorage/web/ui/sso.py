"""Single sign-on pages: `/ui/sso` sends the browser to the OIDC provider, `/ui/sso/callback`
takes its code back and signs the account in (the flow's state, nonce and PKCE verifier travel
in a short signed cookie bound to this browser)."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from aiohttp import web

from ...auth.identity import Principal
from ...events.audit import admin_action
from ...oci.errors import RegistryError, Unauthorized
from ..metrics import login_failed
from .base import UIBase, UIContext

if TYPE_CHECKING:
    from ...bootstrap import Registry

FLOW_COOKIE = "moorage_sso"
FLOW_PATH = "/ui/sso"
FLOW_SECONDS = 600.0  # a sign-in at the provider must come back within this


class SsoNotConfigured(RegistryError):
    code, status, default_message = "UNSUPPORTED", 404, "single sign-on is not configured"


class SsoPages(UIBase):
    """Handlers of the single sign-on redirect and callback."""

    def __init__(self, reg: Registry, auth_on: bool) -> None:
        super().__init__(reg.auth, reg.audit, lambda: reg.ui_sessions, auth_on)
        self.reg = reg
        self.sso_on = auth_on and bool(reg.settings.ui_oidc_issuer)

    def _callback_url(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}{FLOW_PATH}/callback"

    async def start(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._start)

    async def _start(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        from ...auth.sso import Flow  # here: SSO code loads only where SSO is used

        if not self.sso_on:
            raise SsoNotConfigured()
        flow = Flow.new()
        url = await self.call(self.reg.sso.authorization_url, self._callback_url(request), flow)
        response = self.redirect(ctx, url)
        sealed = self.codec.seal("sso", [flow.state, flow.nonce, flow.verifier], FLOW_SECONDS)
        response.set_cookie(FLOW_COOKIE, sealed, max_age=int(FLOW_SECONDS), httponly=True,
                            samesite="Lax", secure=ctx.secure, path=FLOW_PATH)
        return response

    async def callback(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._callback)

    async def _callback(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        if not self.sso_on:
            raise SsoNotConfigured()
        try:
            principal = await self._finish(request)
        except Unauthorized as exc:
            login_failed()
            await self._audit(request, "denied", None, {"reason": exc.message})
            response = self.html(request, ctx, "login.html", status=exc.status, username="",
                                 error=exc.message)
        else:
            from ...ui.sessions import SESSION_COOKIE

            await self._audit(request, "success", principal.name, {})
            response = self.redirect(ctx, "/ui/")
            response.set_cookie(SESSION_COOKIE, self.codec.issue("user", principal.name),
                                max_age=int(self.codec.lifetime), httponly=True,
                                samesite="Lax", secure=ctx.secure, path="/")
        response.del_cookie(FLOW_COOKIE, path=FLOW_PATH)  # a flow is used once, either way
        return response

    async def _finish(self, request: web.Request) -> Principal:
        from ...auth.sso import Flow, SsoRefused

        q = request.query
        fields = self.codec.unseal("sso", request.cookies.get(FLOW_COOKIE))
        if fields is None or len(fields) != 3:
            raise SsoRefused("this sign-in was not started here, or took too long")
        flow = Flow(*fields)
        if "error" in q:
            raise SsoRefused(f"the provider said {q['error'][:100]!r}")
        if not hmac.compare_digest(q.get("state", ""), flow.state):
            raise SsoRefused("the state does not match this sign-in")
        code = q.get("code", "")
        if not code or len(code) > 4096:
            raise SsoRefused("the provider sent no code")
        return await self.call(self.reg.sso.finish, code, self._callback_url(request), flow)

    async def _audit(self, request: web.Request, outcome: str, user: str | None,
                     detail: dict[str, str]) -> None:
        # A sign-in changes nothing else: its event is a write of its own.
        await self.audit_log.outbox.emit_async(admin_action(
            action="ui.sso.login", outcome=outcome, actor=user, actor_kind="user" if user else None,
            remote=request.remote, detail={"issuer": self.reg.sso.issuer, **detail}))
