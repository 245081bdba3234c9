"""GET /api/v1/insights/{repository}/{digest}: an image's size insights report (JSON, shape in
`insights.service`); pull permission on the repository reads it, 404 when it has none."""

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
    from ...insights.service import InsightsService


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
        if not self.open_access:
            actor = await self.management._actor(request)
            if self.authorizer is None:  # built only to list its routes: fail closed
                raise AccessDenied("insights are not served here", action=Action.PULL.value,
                                   resource=str(repository(name)))
            self.authorizer.require(actor, Action.PULL, repository(name),
                                    doing="read its size insights")
        if insights is None:
            raise AccessDenied("insights are not served here", action=Action.PULL.value,
                               resource=str(repository(name)))
        digest = str(parse_digest(request.match_info["digest"]))
        report = await asyncio.to_thread(lambda: insights().show(name, digest))
        return json_response(report)
