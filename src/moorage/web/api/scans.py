"""GET /api/v1/repositories/{name}/manifests/{digest}/scan: a manifest's scan report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from ...oci.digest import parse_digest
from .common import RouteEntry, json_response, require_pull

if TYPE_CHECKING:
    from ...auth.authorizer import Authorizer
    from ...scan.reports import ScanReports
    from .management import ManagementAPI


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
        await require_pull(request, self.management, self.authorizer, self.open_access, name,
                           "read its scan reports", scans is not None)
        assert scans is not None
        digest = str(parse_digest(request.match_info["digest"]))
        report = await asyncio.to_thread(lambda: scans().show(name, digest))
        return json_response(report)
