"""GET /api/v1/repositories/{name}/manifests/{digest}/scan: a manifest's scan report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from ...auth.authorizer import Action, Authorizer, repository
from ...oci.digest import parse_digest
from ...oci.errors import AccessDenied
from .common import RouteEntry, json_response
from .management import ManagementAPI

if TYPE_CHECKING:
    from ...scan.reports import ScanReports


class ScansAPI:
    """Thin handlers over ScanReports: pull permission on the repository reads its reports."""

    def __init__(self, scans: Callable[[], ScanReports] | None, management: ManagementAPI,
                 authorizer: Authorizer | None = None, open_access: bool = False) -> None:
        self.scans = scans  # a getter: the scan modules load on the first request, not at start
        self.management = management
        self.authorizer = authorizer
        self.open_access = open_access  # access control off (`--no-auth`): /v2/ is open too

    def routes(self) -> list[RouteEntry]:
        """(method, path, handler) of this API, as the route table (web/routes.py) lists them."""
        from ..routes import routes_of  # the table imports this module

        return routes_of(self)

    async def scan_report(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        scans = self.scans
        if not self.open_access:
            actor = await self.management._actor(request)
            if self.authorizer is None:
                # Built without one only to list its routes (OpenAPI check): fail closed.
                raise AccessDenied("scan reports are not served here",
                                   action=Action.PULL.value, resource=str(repository(name)))
            self.authorizer.require(actor, Action.PULL, repository(name),
                                    doing="read its scan reports")
        if scans is None:
            raise AccessDenied("scan reports are not served here", action=Action.PULL.value,
                               resource=str(repository(name)))
        digest = str(parse_digest(request.match_info["digest"]))
        report = await asyncio.to_thread(lambda: scans().show(name, digest))
        return json_response(report)
