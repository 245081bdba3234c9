"""GET /api/v1/namespaces/{name}/dedup: what chunk-level dedup saves in a namespace (credentials
as for the management API; on an open registry none are needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from ...auth.identity import ANONYMOUS
from .common import RouteEntry, json_response
from .management import ManagementAPI

if TYPE_CHECKING:
    from ...chunks.service import ChunkService


class DedupAPI:
    """Thin handlers over ChunkService (built on first use)."""

    def __init__(self, chunks: Callable[[], ChunkService], management: ManagementAPI,
                 open_access: bool = False) -> None:
        self.chunks = chunks
        self.management = management
        self.open_access = open_access

    def routes(self) -> list[RouteEntry]:
        """(method, path, handler) of this API, as the route table (web/routes.py) lists them."""
        from ..routes import routes_of  # the table imports this module

        return routes_of(self)

    async def namespace_dedup(self, request: web.Request) -> web.Response:
        # As the models API: on an open registry a caller without credentials sees all.
        actor = ANONYMOUS if self.open_access and "Authorization" not in request.headers \
            else await self.management._actor(request)
        return json_response(await asyncio.to_thread(
            self.chunks().namespace_stats, actor, request.match_info["name"]))
