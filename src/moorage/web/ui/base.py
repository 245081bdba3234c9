"""What every UI handler shares: the signed-in principal, CSRF, rendering with security
headers, and errors as HTML pages (never the JSON of /v2/)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ...auth.service import ANONYMOUS, AuthService, Principal
from ...events.audit import AuditLog
from ...oci.errors import AccessDenied, RegistryError, Unauthorized
from ...ui.sessions import CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE, SessionCodec, new_nonce
from ..auth import audit_denial

log = logging.getLogger("moorage.ui")
MAX_FORM = 64 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; "
                                "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class CsrfRefused(RegistryError):
    code, status, default_message = "DENIED", 403, "the form's CSRF token is missing or wrong"


class UIContext:
    """One request's view of the UI: who is asking and the CSRF token its forms carry."""

    def __init__(self, principal: Principal, nonce: str, fresh_nonce: bool, csrf: str,
                 secure: bool) -> None:
        self.principal = principal
        self.nonce = nonce
        self.fresh_nonce = fresh_nonce
        self.csrf = csrf
        self.secure = secure


class UIBase:
    """Session handling and rendering shared by the page classes."""

    sso_on = False  # single sign-on configured (the login page offers it)

    def __init__(self, auth: AuthService, audit: AuditLog, codec: Callable[[], SessionCodec],
                 auth_on: bool) -> None:
        self.auth = auth
        self.audit_log = audit
        self._codec_factory = codec
        self._codec: SessionCodec | None = None
        self.auth_on = auth_on

    @property
    def codec(self) -> SessionCodec:
        """The session codec (its key is read from the database on first use)."""
        if self._codec is None:
            self._codec = self._codec_factory()
        return self._codec

    async def context(self, request: web.Request) -> UIContext:
        """The caller behind the session cookie (anonymous without a valid one)."""
        codec = await asyncio.to_thread(lambda: self.codec)
        principal = ANONYMOUS
        session = codec.verify(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            try:
                principal = await asyncio.to_thread(self.auth.principal_from_claims,
                                                    session.kind, session.name)
            except Unauthorized:
                principal = ANONYMOUS
        nonce = request.cookies.get(CSRF_COOKIE) or ""
        fresh = not (8 <= len(nonce) <= 64)
        if fresh:
            nonce = new_nonce()
        request["principal"] = principal
        return UIContext(principal, nonce, fresh, codec.csrf_token(nonce, principal.name),
                         request.secure)

    async def form(self, request: web.Request, ctx: UIContext) -> dict[str, str]:
        """The posted form, once its CSRF token is this visitor's."""
        if request.content_length is not None and request.content_length > MAX_FORM:
            raise RegistryError("form too large")
        data = await request.post()
        form = {k: v for k, v in data.items() if isinstance(v, str)}
        if ctx.fresh_nonce or not self.codec.csrf_ok(ctx.nonce, ctx.principal.name,
                                                     form.get(CSRF_FIELD)):
            raise CsrfRefused()
        return form

    def html(self, request: web.Request, ctx: UIContext, template: str, status: int = 200,
             **values: Any) -> web.Response:
        """A rendered page with the UI's security headers (and the CSRF cookie when new)."""
        from ...ui.render import render

        body = render(template, me=ctx.principal, csrf=ctx.csrf, auth_on=self.auth_on,
                      sso_on=self.sso_on, request_path=request.path, **values)
        response = web.Response(text=body, status=status, content_type="text/html",
                                charset="utf-8", headers=SECURITY_HEADERS)
        self.keep_nonce(response, ctx)
        return response

    def keep_nonce(self, response: web.StreamResponse, ctx: UIContext) -> None:
        """Set the CSRF cookie when this visitor had none."""
        if ctx.fresh_nonce:
            response.set_cookie(CSRF_COOKIE, ctx.nonce, httponly=True, samesite="Lax",
                                secure=ctx.secure, path="/ui")

    def redirect(self, ctx: UIContext, location: str) -> web.Response:
        """A 303 See Other (the answer to a form) with the UI's headers."""
        response = web.Response(status=303, headers={**SECURITY_HEADERS, "Location": location})
        self.keep_nonce(response, ctx)
        return response

    async def guarded(self, request: web.Request,
                      page: Callable[[web.Request, UIContext], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        """Run a page; a RegistryError becomes an HTML error page with its status."""
        ctx = await self.context(request)
        try:
            return await page(request, ctx)
        except RegistryError as exc:
            if isinstance(exc, AccessDenied):  # audited once, as /v2/ and /api/v1 refusals are
                await audit_denial(self.audit_log, request, exc, exc.action, None,
                                   ctx.principal.name, ctx.principal.kind, resource=exc.resource)
            log.info("ui request refused", extra={"path": request.path, "status": exc.status,
                                                  "code": exc.code, "reason": exc.message})
            return self.html(request, ctx, "error.html", status=exc.status, code=exc.code,
                             message=exc.message)

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A blocking service call in a thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)
