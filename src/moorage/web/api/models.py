"""GET /api/v1/models…: search the model index, a model's card and its files and tensors,
filtered to the repositories the caller may pull. Credentials as for the management API; on an
open (`--no-auth`) registry a request without them is the anonymous caller, who sees all."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ...auth.identity import ANONYMOUS, Principal
from ...models.service import ModelService
from .common import RouteEntry, json_response
from .management import ManagementAPI


class ModelsAPI:
    """Thin handlers over ModelService."""

    def __init__(self, models: ModelService | None, management: ManagementAPI,
                 open_access: bool = False) -> None:
        self.models = models
        self.management = management
        self.open_access = open_access

    def routes(self) -> list[RouteEntry]:
        """(method, path, handler) of this API, as the route table (web/routes.py) lists them."""
        from ..routes import routes_of  # the table imports this module

        return routes_of(self)

    async def _caller(self, request: web.Request) -> Principal:
        if self.open_access and "Authorization" not in request.headers:
            return ANONYMOUS
        return await self.management._actor(request)

    def _service(self) -> ModelService:
        assert self.models is not None, "built without a model service"
        return self.models

    async def search_models(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        found = await asyncio.to_thread(self._service().search, request.query.get("q", ""),
                                        caller)
        return json_response({"models": found})

    async def get_model(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        m = request.match_info
        card = await asyncio.to_thread(self._service().card_of, m["repository"], m["digest"],
                                       None, caller)
        return json_response(card)

    async def model_files(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        m = request.match_info
        tensors = request.query.get("tensors", "1") not in ("0", "false", "no")
        listed = await asyncio.to_thread(self._service().files_of, m["repository"],
                                         m["digest"], None, caller, tensors)
        return json_response(listed)
