"""Admin pages: namespaces (members, quota, immutability, retention with its dry-run plan),
robots (create with the secret shown once, revoke), GC runs, jobs and the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...auth.admin import NotFound
from ...auth.authorizer import SERVER, Action
from ...auth.authorizer import namespace as ns_resource
from ...oci.errors import AccessDenied, RegistryError
from ...times import parse_time
from .base import UIBase, UIContext

if TYPE_CHECKING:
    from ...bootstrap import Registry

AUDIT_PAGE = 100
ROBOT_ACTIONS = ("pull", "push", "delete")
AUDIT_FILTERS = ("actor", "action", "repository", "outcome", "since", "until")


class AdminPages(UIBase):
    """Handlers of the admin pages; every service call checks the actor's rights itself."""

    def __init__(self, reg: Registry, auth_on: bool) -> None:
        super().__init__(reg.auth, reg.audit, lambda: reg.ui_sessions, auth_on)
        self.reg = reg

    def _administered(self, ctx: UIContext) -> list[dict[str, Any]]:
        """The namespaces the caller administers; AccessDenied when there are none."""
        who = ctx.principal
        mine = [ns for ns in self.reg.admin.list_namespaces(who)
                if self.reg.authorizer.allows(who, Action.ADMIN_NAMESPACE, ns_resource(ns["name"]))]
        if not mine and not self._server_admin(ctx):
            raise AccessDenied("only an admin of a namespace or of the server may see this page",
                               action=Action.ADMIN_NAMESPACE.value)
        return mine

    def _server_admin(self, ctx: UIContext) -> bool:
        return self.reg.authorizer.allows(ctx.principal, Action.ADMIN_SERVER, SERVER)

    # -- overview and namespaces --------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._overview)

    async def _overview(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        data = await self.call(self._overview_data, ctx)
        return self.html(request, ctx, "admin.html", **data)

    def _overview_data(self, ctx: UIContext) -> dict[str, Any]:
        namespaces = self._administered(ctx)
        server = self._server_admin(ctx)
        return {"namespaces": namespaces, "server_admin": server,
                "gc_runs": self.reg.gc.runs(ctx.principal, 20) if server else [],
                "jobs": [j.to_dict() for j in self.reg.jobs.list(limit=50)] if server else []}

    async def namespace(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._namespace)

    async def _namespace(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        name = request.query.get("name", "")[:255]
        data = await self.call(self._namespace_data, ctx, name)
        return self.html(request, ctx, "admin_namespace.html", name=name, **data)

    def _namespace_data(self, ctx: UIContext, name: str) -> dict[str, Any]:
        who, actor = self.reg, ctx.principal
        # Hidden, not refused by name: an outsider does not learn that the namespace exists.
        if not self.reg.authorizer.allows(actor, Action.ADMIN_NAMESPACE, ns_resource(name)):
            raise NotFound("no such namespace (or you do not administer it)")
        return {"detail": who.admin.get_namespace(actor, name),
                "usage": who.policies.usage(actor, name),
                "immutability": who.policies.list_immutability(actor, name),
                "retention": who.policies.policies(actor, name),
                "plan": who.retention.run(actor, name, False)}

    # -- robots -------------------------------------------------------------------------------

    async def robots(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._robots)

    async def _robots(self, request: web.Request, ctx: UIContext,
                      created: dict[str, Any] | None = None, error: str | None = None,
                      status: int = 200) -> web.StreamResponse:
        namespaces = await self.call(self._administered, ctx)
        robots = await self.call(self.reg.admin.list_robots, ctx.principal)
        return self.html(request, ctx, "robots.html", status=status, robots=robots,
                         namespaces=namespaces, actions=ROBOT_ACTIONS, created=created,
                         error=error)

    async def create_robot(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._create_robot)

    async def _create_robot(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        form = await self.form(request, ctx)
        namespace = form.get("namespace", "")
        actions = [a for a in ROBOT_ACTIONS if form.get(f"action_{a}") == "on"]
        try:
            created = await self.call(self.reg.admin.add_robot, ctx.principal,
                                      form.get("name", "").strip(), {namespace: actions},
                                      None, form.get("description") or None)
        except AccessDenied:
            raise
        except RegistryError as exc:
            return await self._robots(request, ctx, error=exc.message, status=exc.status)
        # The secret is in this one response and stored nowhere in clear: no redirect.
        return await self._robots(request, ctx, created=created, status=201)

    async def revoke_robot(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._revoke_robot)

    async def _revoke_robot(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        form = await self.form(request, ctx)
        await self.call(self.reg.admin.revoke_robot, ctx.principal, form.get("name", ""))
        return self.redirect(ctx, "/ui/admin/robots")

    # -- audit log ----------------------------------------------------------------------------

    async def audit(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._audit)

    async def _audit(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        q = {k: request.query.get(k, "").strip()[:200] for k in AUDIT_FILTERS}
        try:
            since = parse_time(q["since"]) if q["since"] else None
            until = parse_time(q["until"]) if q["until"] else None
        except ValueError:
            raise RegistryError("since and until are RFC 3339 times or Unix seconds") from None
        events = await self.call(
            self.reg.admin.audit_events, ctx.principal, limit=AUDIT_PAGE,
            actor=q["actor"] or None, action=q["action"] or None,
            repository=q["repository"] or None, outcome=q["outcome"] or None,
            since=since, until=until, before_id=None)
        return self.html(request, ctx, "audit.html", filters=q, events=events)
