"""Upstream and cache routes of the management API (/api/v1/upstreams, /api/v1/caches) for
server admins; authentication as in the management API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...oci.errors import RegistryError
from .common import RouteEntry, json_response
from .management import ManagementAPI

if TYPE_CHECKING:
    from ...cache.service import CacheService
    from ...registry.upstreams import UpstreamService


def _text(body: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise RegistryError(f"{key!r} is {'required and ' if required else ''}a non-empty "
                            "string")
    return value


class DistributionAPI:
    """Thin handlers over UpstreamService and CacheService."""

    def __init__(self, upstreams: UpstreamService | None, caches: CacheService | None,
                 management: ManagementAPI) -> None:
        self.upstreams = upstreams
        self.caches = caches
        self.management = management

    def routes(self) -> list[RouteEntry]:
        """(method, path, handler) of this API, as the route table (web/routes.py) lists them."""
        from ..routes import routes_of  # the table imports this module

        return routes_of(self)

    async def _call(self, service: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        if service is None:  # built only to list its routes (OpenAPI check)
            raise RegistryError("caches are not served here")
        fn: Callable[..., Any] = getattr(service, name)
        return await asyncio.to_thread(lambda: fn(*args, **kwargs))

    async def list_upstreams(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        rows = await self._call(self.upstreams, "list_upstreams", actor)
        return json_response({"upstreams": rows})

    async def add_upstream(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        body = await self.management._json(request)
        name, url = _text(body, "name", True), _text(body, "url", True)
        insecure = body.get("insecure", False)
        if not isinstance(insecure, bool):
            raise RegistryError("'insecure' is true or false")
        row = await self._call(self.upstreams, "add", actor, name, url,
                               username=_text(body, "username"),
                               password=_text(body, "password"), token=_text(body, "token"),
                               ca_file=_text(body, "ca_file"), insecure=insecure)
        return json_response(row, status=201)

    async def remove_upstream(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        await self._call(self.upstreams, "remove", actor, request.match_info["name"])
        return web.Response(status=204)

    async def list_caches(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        return json_response({"caches": await self._call(self.caches, "list_caches", actor)})

    async def add_cache(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        body = await self.management._json(request)
        name, upstream = _text(body, "name", True), _text(body, "upstream", True)
        namespace = _text(body, "namespace", True)
        revalidate = body.get("revalidate", 600)
        if isinstance(revalidate, bool) or not isinstance(revalidate, int | float):
            raise RegistryError("'revalidate' is a number of seconds")
        row = await self._call(self.caches, "add", actor, name, upstream, namespace,
                               float(revalidate))
        return json_response(row, status=201)

    async def remove_cache(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        await self._call(self.caches, "remove", actor, request.match_info["name"])
        return web.Response(status=204)
