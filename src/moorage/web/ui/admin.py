"""Admin pages: namespaces (members, quota, immutability, retention with its dry-run plan),
robots (create with the secret shown once, revoke), GC runs, jobs and the audit log."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from ...auth.admin import NotFound
from ...auth.authorizer import SERVER, Action
from ...auth.authorizer import namespace as ns_resource
from ...auth.scopes import ROLES
from ...oci.errors import AccessDenied, RegistryError
from ...times import parse_time
from .base import UIBase, UIContext

if TYPE_CHECKING:
    from ...auth.identity import Principal
    from ...bootstrap import Registry

AUDIT_PAGE = 100
ROBOT_ACTIONS = ("pull", "push", "delete")
AUDIT_FILTERS = ("actor", "action", "repository", "outcome", "since", "until")
RETENTION_FLASH = {
    "queued": "Retention queued: it runs as a background job (its state is below).",
    "already": "Retention is already queued or running for this namespace: no second job was "
               "queued.",
}


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

    async def _namespace(self, request: web.Request, ctx: UIContext, name: str | None = None,
                         status: int = 200, **shown: Any) -> web.StreamResponse:
        name = name if name is not None else request.query.get("name", "")[:255]
        data = await self.call(self._namespace_data, ctx, name)
        # A fixed message per outcome of the last form (never text from the query).
        notice = RETENTION_FLASH.get(request.query.get("flash", ""))
        return self.html(request, ctx, "admin_namespace.html", status=status, name=name,
                         roles=ROLES, **{"error": None, "notice": notice, **data, **shown})

    def _hide_unless_admin(self, ctx: UIContext, name: str) -> None:
        # Hidden, not refused by name: an outsider does not learn that the namespace exists.
        if not self.reg.authorizer.allows(ctx.principal, Action.ADMIN_NAMESPACE,
                                          ns_resource(name)):
            raise NotFound("no such namespace (or you do not administer it)")

    def _namespace_data(self, ctx: UIContext, name: str) -> dict[str, Any]:
        who, actor = self.reg, ctx.principal
        self._hide_unless_admin(ctx, name)
        return {"detail": who.admin.get_namespace(actor, name),
                "usage": who.policies.usage(actor, name),
                "immutability": who.policies.list_immutability(actor, name),
                "retention": who.policies.policies(actor, name),
                "plan": who.retention.run(actor, name, False),
                "retention_job": who.retention.last_job(actor, name, who.jobs),
                "pull_policy": who.pull_policies.show(actor, name),
                "trust": who.trust.list(actor, name)}

    async def edit_namespace(self, request: web.Request) -> web.StreamResponse:
        return await self.guarded(request, self._edit_namespace)

    async def _edit_namespace(self, request: web.Request, ctx: UIContext) -> web.StreamResponse:
        form = await self.form(request, ctx)
        edit, name = request.match_info["edit"], form.get("name", "")[:255]
        change = _NS_EDITS.get(edit)
        if change is None and edit != "retention-apply":
            raise web.HTTPNotFound()
        await self.call(self._hide_unless_admin, ctx, name)
        if change is None:  # retention-apply: a job, the request never waits for the deletions
            _job, created = await self.call(self.reg.retention.queue, ctx.principal, name,
                                            self.reg.jobs)
            return self.redirect(ctx, "/ui/admin/namespace?" + urlencode(
                {"name": name, "flash": "queued" if created else "already"}) + "#retention-job")
        try:
            await self.call(change, self.reg, ctx.principal, name, form)
        except AccessDenied:
            raise
        except RegistryError as exc:
            return await self._namespace(request, ctx, name, status=exc.status, error=exc.message)
        return self.redirect(ctx, "/ui/admin/namespace?" + urlencode({"name": name}))

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
        before, after = _page_id(request, "before"), _page_id(request, "after")
        events = await self.call(
            self.reg.admin.audit_events, ctx.principal, limit=AUDIT_PAGE + 1,
            actor=q["actor"] or None, action=q["action"] or None,
            repository=q["repository"] or None, outcome=q["outcome"] or None,
            since=since, until=until, before_id=before, after_id=None if before else after)
        more = len(events) > AUDIT_PAGE  # one past the page says whether there is another
        events = events[1:] if (more and after and not before) else events[:AUDIT_PAGE]
        filters = {k: v for k, v in q.items() if v}
        older = newer = None
        if events and (more or after):
            older = urlencode({**filters, "before": events[-1]["id"]})
        if events and (before or (after and more)):
            newer = urlencode({**filters, "after": events[0]["id"]})
        return self.html(request, ctx, "audit.html", filters=q, events=events, older=older,
                         newer=newer)


def _page_id(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key, "")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise RegistryError(f"{key} is an audit event id")
    return int(raw)


def _member(reg: Registry, actor: Principal, ns: str, form: dict[str, str]) -> None:
    role = form.get("role", "").strip()
    reg.admin.set_member(actor, ns, form.get("user", "").strip()[:200],
                         None if role in ("", "remove") else role)


def _quota(reg: Registry, actor: Principal, ns: str, form: dict[str, str]) -> None:
    from ...policy.quota import parse_size

    raw = form.get("limit", "").strip()
    try:
        limit = None if raw.lower() in ("", "none") else parse_size(raw)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    reg.policies.set_quota(actor, ns, limit)


def _add_rule(reg: Registry, actor: Principal, ns: str, form: dict[str, str]) -> None:
    reg.policies.add_immutability(actor, ns, form.get("pattern", "").strip(),
                                  form.get("exceptions", "").strip() or None)


def _remove_rule(reg: Registry, actor: Principal, ns: str, form: dict[str, str]) -> None:
    reg.policies.remove_immutability(actor, ns, form.get("pattern", ""))


def _retention(reg: Registry, actor: Principal, ns: str, form: dict[str, str]) -> None:
    repository = form.get("repository", "").strip() or None
    if form.get("clear"):
        reg.policies.set_policy(actor, ns, repository, None)
        return
    rules: dict[str, Any] = {}
    try:
        for key, kind in (("keep_last_pushed", int), ("keep_last_pulled", int),
                          ("keep_days", float), ("untagged_days", float)):
            if form.get(key, "").strip():
                rules[key] = kind(form[key].strip())
    except ValueError:
        raise RegistryError("retention counts are whole numbers, days are numbers") from None
    if form.get("keep_tags", "").strip():
        rules["keep_tags"] = form["keep_tags"]
    reg.policies.set_policy(actor, ns, repository, rules)


_NS_EDITS: dict[str, Callable[[Registry, Principal, str, dict[str, str]], None]] = {
    "member": _member, "quota": _quota, "immutability": _add_rule,
    "immutability-remove": _remove_rule, "retention": _retention,
}
