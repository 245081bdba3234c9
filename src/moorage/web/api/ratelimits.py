"""Rate limit routes of the management API (/api/v1/ratelimits) for server admins; the target
`*` is the default for anonymous clients."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ...oci.errors import RegistryError
from ...policy.ratelimit import ANONYMOUS_TARGET
from ...registry.rate_limits import RateLimitService
from .common import RouteEntry, json_response
from .management import ManagementAPI


class RateLimitsAPI:
    """Thin handlers over RateLimitService."""

    def __init__(self, limits: RateLimitService | None, management: ManagementAPI) -> None:
        self.limits = limits
        self.management = management

    def routes(self) -> list[RouteEntry]:
        """(method, path, handler) of this API, as the route table (web/routes.py) lists them."""
        from ..routes import routes_of  # the table imports this module

        return routes_of(self)

    async def _call(self, name: str, *args: Any) -> Any:
        if self.limits is None:  # built only to list its routes (OpenAPI check)
            raise RegistryError("rate limits are not served here")
        fn: Callable[..., Any] = getattr(self.limits, name)
        return await asyncio.to_thread(fn, *args)

    async def list_limits(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        return json_response({"limits": await self._call("list", actor)})

    async def set_limit(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        body = await self.management._json(request)
        target = request.match_info["target"]
        saved = await self._call("set", actor, None if target == ANONYMOUS_TARGET else target,
                                 body)
        return json_response(saved)

    async def remove_limit(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        target = request.match_info["target"]
        await self._call("remove", actor, None if target == ANONYMOUS_TARGET else target)
        return web.Response(status=204)
