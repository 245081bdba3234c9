"""GET /api/v1/jobs: the job queue for server admins."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..auth.authorizer import SERVER, Action, Authorizer
from ..jobs.queue import JobQueue
from ..oci.errors import AccessDenied, RegistryError
from .api import ManagementAPI, audited_denials, json_response
from .params import parse_uint

Route = tuple[str, str, Callable[..., Awaitable[Any]]]


class JobsAPI:
    """Thin handlers over JobQueue; authentication as in the management API."""

    def __init__(self, queue: JobQueue, management: ManagementAPI,
                 authorizer: Authorizer | None = None) -> None:
        self.queue = queue
        self.management = management
        self.authorizer = authorizer

    def routes(self) -> list[Route]:
        """(method, path, handler): the source of truth the OpenAPI test checks."""
        return [("GET", "/api/v1/jobs", self.list_jobs)]

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


def register_jobs_api(app: web.Application, api: JobsAPI) -> None:
    """Add the job routes to the application."""
    for method, path, handler in api.routes():
        app.router.add_route(method, path, audited_denials(api.management.audit_log, handler))
