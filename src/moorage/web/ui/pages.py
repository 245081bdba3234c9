"""The browsing pages: sign in and out, namespaces and repositories, tags, a manifest."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from ...auth.authorizer import Action
from ...auth.authorizer import repository as repo_resource
from ...auth.service import ROBOT_PREFIX
from ...oci.errors import RegistryError, TooManyRequests, Unauthorized
from ...ui import views
from ...ui.render import STATIC
from ...ui.sessions import SESSION_COOKIE
from ..metrics import login_failed
from .base import SECURITY_HEADERS, UIBase, UIContext

if TYPE_CHECKING:
    from ...bootstrap import Registry
    from ..ratelimit import RateGate

log = logging.getLogger("moorage.ui")
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
MAX_SEARCH = 100


class Pages(UIBase):
    """Handlers of the pages anyone may see (each shows only what its caller may pull)."""

    def __init__(self, reg: Registry, auth_on: bool, gate: RateGate | None = None) -> None:
        super().__init__(reg.auth, reg.audit, lambda: reg.ui_sessions, auth_on)
        self.reg = reg
        self.gate = gate  # a sign-in is a login: it spends the login rate limit like /token
        self.sso_on = auth_on and bool(reg.settings.ui_oidc_issuer)

    # -- entry points -------------------------------------------------------------------------

    async def root(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "/ui/"})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        path = STATIC / name
        if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES \
                or not path.is_file():
            raise web.HTTPNotFound()
        return web.Response(body=path.read_bytes(), content_type=STATIC_TYPES[path.suffix],
                            headers={**SECURITY_HEADERS, "Cache-Control": "max-age=3600"})

    # -- sign in / out ------------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._login_form)

    async def _login_form(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        return self.html(request, ctx, "login.html", error=None, username="")

    async def login(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._login)

    async def _login(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        form = await self.form(request, ctx)
        username = form.get("username", "").strip()[:200]
        password = form.get("password", "")
        if username.startswith(ROBOT_PREFIX):
            return self.html(request, ctx, "login.html", status=403, username=username,
                             error="robot accounts cannot sign in to the web UI")
        try:
            if self.gate is not None:
                await self.gate.login(request, username or None)
            principal = await self.auth.login(username, password, request.remote, record=True)
        except (Unauthorized, TooManyRequests) as exc:
            login_failed()
            return self.html(request, ctx, "login.html", status=exc.status, username=username,
                             error=exc.message)
        if principal.kind != "user":
            return self.html(request, ctx, "login.html", status=403, username=username,
                             error="only user accounts can sign in to the web UI")
        response = self.redirect(ctx, "/ui/")
        response.set_cookie(SESSION_COOKIE, self.codec.issue("user", principal.name),
                            max_age=int(self.codec.lifetime), httponly=True, samesite="Lax",
                            secure=ctx.secure, path="/")
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._logout)

    async def _logout(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        await self.form(request, ctx)
        response = self.redirect(ctx, "/ui/")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    # -- browsing -----------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._home)

    async def _home(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        search = request.query.get("q", "").strip()[:MAX_SEARCH]
        repos = await self.call(self.reg.browse.repositories, ctx.principal, search)
        namespaces: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"repositories": 0, "size": 0, "last_push": None})
        for r in repos:
            ns = namespaces[r["namespace"]]
            ns["repositories"] += 1
            ns["size"] += r["size"]
            if r["last_push"] and (ns["last_push"] or 0) < r["last_push"]:
                ns["last_push"] = r["last_push"]
        return self.html(request, ctx, "home.html", search=search, repositories=repos,
                         namespaces=sorted(namespaces.items()))

    async def repository(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._repository)

    async def _repository(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        name = _required(request, "name")
        sort = "semver" if request.query.get("sort") == "semver" else "pushed"
        view = await self.call(self.reg.browse.repository, ctx.principal, name)
        rows = views.tag_rows(view.tags, view.children, view.pulls, view.immutable_rules, sort)
        for row in rows:
            row["pull"] = views.pull_commands(request.host, name, row["name"], row["digest"])
        return self.html(request, ctx, "repository.html", name=name, sort=sort, tags=rows,
                         deleted=view.deleted)

    async def manifest(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._manifest)

    async def _manifest(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        name, ref = _required(request, "name"), _required(request, "ref")
        view = await self.call(self.reg.browse.manifest, ctx.principal, name, ref)
        doc = view.content
        index = views.is_index(doc, view.media_type)
        entries = [{"digest": m.get("digest"), "media_type": m.get("mediaType"),
                    "size": m.get("size"), "platform": views.platform_of(m),
                    "present": m.get("digest") in view.children}
                   for m in (doc.get("manifests") or []) if isinstance(m, dict)] if index else []
        layers = [{"digest": x.get("digest"), "media_type": x.get("mediaType"),
                   "size": x.get("size")} for x in doc.get("layers") or [] if isinstance(x, dict)]
        referrers = [{**d, "kind": views.referrer_kind(d)} for d in view.referrers]
        extras = await self.call(self._extras, ctx, name, view.digest, referrers,
                                 not index and bool(layers))
        return self.html(
            request, ctx, "manifest.html", name=name, view=view, index=index, entries=entries,
            layers=layers, total=views.total_size(doc, view.children),
            config=views.config_summary(view.config),
            platforms=views.platforms(doc, view.config), referrers=referrers,
            annotations={str(k): str(v) for k, v in (doc.get("annotations") or {}).items()},
            pull=views.pull_commands(request.host, name, view.tags[0] if view.tags else None,
                                     view.digest),
            **extras)

    def _extras(self, ctx: UIContext, name: str, digest: str, referrers: list[dict[str, Any]],
                image: bool) -> dict[str, Any]:
        """Signature verification, the scan report and the model card, where they exist (a
        failing feature leaves its section out rather than the page)."""
        out: dict[str, Any] = {"verification": None, "scan": None, "model": None,
                               "insights": None, "may_push": False, "image": image}
        if any(r["kind"] in ("signature", "attestation") for r in referrers):
            try:
                result = self.reg.verifier.verify(name, digest)
                out["verification"] = {
                    "summary": result.summary(), "verified": result.verified,
                    "checks": {c.manifest: c.outcome
                               for c in (*result.signatures, *result.attestations)}}
            except (RegistryError, ValueError, OSError) as exc:
                log.info("ui: verification unavailable", extra={"reason": str(exc)[:200]})
        if image:
            try:
                report = self.reg.scans.show(name, digest)
                if report.get("status") != "pending":
                    out["scan"] = report
            except (RegistryError, ValueError, OSError) as exc:
                log.info("ui: scan report unavailable", extra={"reason": str(exc)[:200]})
            try:
                out["insights"] = views.insights_view(self.reg.insights.get(name, digest))
            except (RegistryError, ValueError, OSError) as exc:
                log.info("ui: insights unavailable", extra={"reason": str(exc)[:200]})
            out["may_push"] = self.reg.authorizer.allows(ctx.principal, Action.PUSH,
                                                         repo_resource(name))
        try:
            out["model"] = self.reg.models.card_of(name, digest, None, ctx.principal)
        except RegistryError:
            pass
        return out

    async def queue_insights(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._queue_insights)

    async def _queue_insights(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        form = await self.form(request, ctx)
        name, ref = form.get("name", "").strip()[:512], form.get("digest", "").strip()[:512]
        # The page's access first (an outsider learns nothing), then push to queue work.
        view = await self.call(self.reg.browse.manifest, ctx.principal, name, ref)
        await self.call(self.reg.authorizer.require, ctx.principal, Action.PUSH,
                        repo_resource(name), "queue its size insights")
        await self.call(self.reg.insights.queue, name, view.digest)
        return self.redirect(ctx, f"/ui/manifest?{urlencode({'name': name, 'ref': view.digest})}"
                                  "#insights-h")


def _required(request: web.Request, key: str) -> str:
    value = request.query.get(key, "").strip()
    if not value or len(value) > 512:
        raise RegistryError(f"the {key!r} parameter is required")
    return value
