"""GET /api/v1/insights/{repository}/{digest}: an image's size insights report (JSON, shape in
`insights.service`); pull permission on the repository reads it, 404 when it has none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from ...oci.digest import parse_digest
from .common import RouteEntry, json_response, require_pull

if TYPE_CHECKING:
    from ...auth.authorizer import Authorizer
    from ...insights.service import InsightsService
    from .management import ManagementAPI


class InsightsAPI:
    """Thin handler over InsightsService."""

    def __init__(self, insights: Callable[[], InsightsService] | None,
                 management: ManagementAPI, authorizer: Authorizer | None = None,
                 open_access: bool = False) -> None:
        self.insights = insights  # a getter: the insights modules load on first use
        self.management = management
        self.authorizer = authorizer
        self.open_access = open_access  # access control off (`--no-auth`): /v2/ is open too

    def routes(self) -> list[RouteEntry]:
        """(method, path, handler) of this API, as the route table (web/routes.py) lists them."""
        from ..routes import routes_of  # the table imports this module

        return routes_of(self)

    async def get_insights(self, request: web.Request) -> web.Response:
        name = request.match_info["repository"]
        insights = self.insights
        await require_pull(request, self.management, self.authorizer, self.open_access, name,
                           "read its size insights", insights is not None)
        assert insights is not None
        digest = str(parse_digest(request.match_info["digest"]))
        report = await asyncio.to_thread(lambda: insights().show(name, digest))
        return json_response(report)
