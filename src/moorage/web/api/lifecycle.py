"""Lifecycle routes of the management API (/api/v1/...): immutability, quotas and usage,
retention policies with plan/apply, soft-deleted tags, garbage collection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ...gc.collector import parse_duration
from ...gc.service import GcService
from ...oci.errors import RegistryError
from ...registry.deletion import DeletionService
from ...registry.policies import PolicyService
from ...registry.retention import RetentionService
from .common import RouteEntry, json_response
from .management import ManagementAPI


class LifecycleAPI:
    """Thin handlers over the policy, retention, deletion and GC services; authentication as
    in the management API."""

    def __init__(self, policies: PolicyService, retention: RetentionService,
                 deletion: DeletionService, gc: GcService, management: ManagementAPI) -> None:
        self.policies = policies
        self.retention = retention
        self.deletion = deletion
        self.gc = gc
        self.management = management

    def routes(self) -> list[RouteEntry]:
        """(method, path, handler) of this API, as the route table (web/routes.py) lists them."""
        from ..routes import routes_of  # the table imports this module

        return routes_of(self)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _actor(self, request: web.Request) -> Any:
        return await self.management._actor(request)

    # -- immutability -------------------------------------------------------------------------

    async def list_immutability(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        rules = await self._call(self.policies.list_immutability, actor,
                                 request.match_info["name"])
        return json_response({"rules": rules})

    async def add_immutability(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        body = await self.management._json(request)
        pattern = body.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise RegistryError("'pattern' is required and must be a string")
        exceptions = body.get("exceptions", [])
        if not isinstance(exceptions, list | str):
            raise RegistryError("'exceptions' is a list of tag patterns")
        await self._call(self.policies.add_immutability, actor, request.match_info["name"],
                         pattern, exceptions)
        return json_response({"pattern": pattern, "exceptions": exceptions}, status=201)

    async def remove_immutability(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        await self._call(self.policies.remove_immutability, actor, request.match_info["name"],
                         request.match_info["pattern"])
        return web.Response(status=204)

    # -- quotas -------------------------------------------------------------------------------

    async def usage(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        return json_response(
            await self._call(self.policies.usage, actor, request.match_info["name"]))

    async def set_quota(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        body = await self.management._json(request)
        limit = body.get("limit_bytes")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise RegistryError("'limit_bytes' is a whole number of bytes ≥ 0")
        return json_response(
            await self._call(self.policies.set_quota, actor, request.match_info["name"], limit))

    async def remove_quota(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        await self._call(self.policies.set_quota, actor, request.match_info["name"], None)
        return web.Response(status=204)

    # -- retention ----------------------------------------------------------------------------

    async def list_policies(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        return json_response({"policies": await self._call(
            self.policies.policies, actor, request.match_info["name"])})

    async def set_policy(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        body = await self.management._json(request)
        rules = body.get("rules")
        if not isinstance(rules, dict):
            raise RegistryError("'rules' is an object, e.g. {\"keep_last_pushed\": 10}")
        repository = body.get("repository")
        if repository is not None and not isinstance(repository, str):
            raise RegistryError("'repository' is a repository name")
        saved = await self._call(self.policies.set_policy, actor, request.match_info["name"],
                                 repository, rules)
        return json_response({"namespace": request.match_info["name"],
                                  "repository": repository, "rules": saved})

    async def remove_policy(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        await self._call(self.policies.set_policy, actor, request.match_info["name"],
                         request.query.get("repository"), None)
        return web.Response(status=204)

    async def plan(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        return json_response(await self._call(
            self.retention.run, actor, request.match_info["name"], False))

    async def apply(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        return json_response(await self._call(
            self.retention.run, actor, request.match_info["name"], True))

    # -- soft-deleted tags --------------------------------------------------------------------

    async def deleted_tags(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        repository = request.query.get("repository")
        if not repository:
            raise RegistryError("?repository= is required")
        return json_response({"repository": repository, "tags": await self._call(
            self.deletion.deleted_tags, actor, repository)})

    async def restore_tag(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        body = await self.management._json(request)
        repository, tag = body.get("repository"), body.get("tag")
        if not isinstance(repository, str) or not isinstance(tag, str):
            raise RegistryError("'repository' and 'tag' are required strings")
        digest = await self._call(self.deletion.restore_tag, actor, repository, tag,
                                  bool(body.get("force", False)))
        return json_response({"repository": repository, "tag": tag, "digest": digest})

    # -- garbage collection -------------------------------------------------------------------

    async def gc_runs(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        return json_response({"runs": await self._call(self.gc.runs, actor)})

    async def run_gc(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        body = await self.management._json(request)
        grace = body.get("grace_period")
        try:
            grace_s = parse_duration(grace) if grace is not None else None
        except (ValueError, TypeError):
            raise RegistryError("grace_period is seconds or a duration like 30m, 24h") from None
        report = await self._call(self.gc.run, actor, bool(body.get("dry_run", False)),
                                  grace_s, "api")
        return json_response(report.to_dict())
