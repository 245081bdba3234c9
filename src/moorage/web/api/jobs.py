"""GET /api/v1/jobs: the job queue for server admins."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ...auth.authorizer import SERVER, Action, Authorizer
from ...jobs.queue import JobQueue
from ...oci.errors import AccessDenied, RegistryError
from ..params import parse_uint
from .common import RouteEntry, json_response
from .management import ManagementAPI


class JobsAPI:
    """Thin handlers over JobQueue; authentication as in the management API."""

    def __init__(self, queue: JobQueue, management: ManagementAPI,
                 authorizer: Authorizer | None = None) -> None:
        self.queue = queue
        self.management = management
        self.authorizer = authorizer

    def routes(self) -> list[RouteEntry]:
        """(method, path, handler) of this API, as the route table (web/routes.py) lists them."""
        from ..routes import routes_of  # the table imports this module

        return routes_of(self)

    async def list_jobs(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        if self.authorizer is None:
            # Built without one only to list its routes (OpenAPI check): fail closed.
            raise AccessDenied("the job queue is not served here", action=Action.ADMIN_SERVER.value,
                               resource=str(SERVER))
        self.authorizer.require(actor, Action.ADMIN_SERVER, SERVER, doing="see the job queue")
        limit = parse_uint(request.query.get("limit", "100"))
        if limit is None or not 1 <= limit <= 1000:
            raise RegistryError("limit is a whole number between 1 and 1000 (ASCII digits)")
        jobs = await asyncio.to_thread(self.queue.list, request.query.get("state"),
                                       request.query.get("kind"), limit)
        return json_response({"jobs": [j.to_dict() for j in jobs]})
