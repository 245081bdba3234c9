"""Webhook routes of the management API (/api/v1/webhooks, /api/v1/deliveries) for server
admins; authentication as in the management API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ...oci.errors import RegistryError
from ...registry.webhooks import WebhookService
from ..params import parse_uint
from .common import RouteEntry, json_response
from .management import ManagementAPI


class WebhooksAPI:
    """Thin handlers over WebhookService."""

    def __init__(self, webhooks: WebhookService | None, management: ManagementAPI) -> None:
        self.webhooks = webhooks
        self.management = management

    def routes(self) -> list[RouteEntry]:
        """(method, path, handler) of this API, as the route table (web/routes.py) lists them."""
        from ..routes import routes_of  # the table imports this module

        return routes_of(self)

    async def _call(self, name: str, *args: Any) -> Any:
        if self.webhooks is None:  # built only to list its routes (OpenAPI check)
            raise RegistryError("webhooks are not served here")
        fn: Callable[..., Any] = getattr(self.webhooks, name)
        return await asyncio.to_thread(fn, *args)

    async def list_webhooks(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        return json_response({"webhooks": await self._call("list_webhooks", actor)})

    async def add_webhook(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        body = await self.management._json(request)
        namespace, url = body.get("namespace"), body.get("url")
        events, secret, name = body.get("events", ["push"]), body.get("secret"), body.get("name")
        for key, value in (("namespace", namespace), ("url", url)):
            if not isinstance(value, str) or not value:
                raise RegistryError(f"{key!r} is required and must be a string")
        if not (isinstance(events, list) and events and all(isinstance(e, str) for e in events)):
            raise RegistryError("'events' is a list of push, pull, delete, tag")
        for key, value in (("secret", secret), ("name", name)):
            if value is not None and not isinstance(value, str):
                raise RegistryError(f"{key!r} must be a string")
        hook = await self._call("add", actor, namespace, url, events, secret or None, name)
        return json_response(hook, status=201)

    async def remove_webhook(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        await self._call("remove", actor, request.match_info["name"])
        return web.Response(status=204)

    async def list_deliveries(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        limit = parse_uint(request.query.get("limit", "100"))
        if limit is None or not 1 <= limit <= 1000:
            raise RegistryError("limit is a whole number between 1 and 1000 (ASCII digits)")
        failed = request.query.get("failed", "false").lower()
        if failed not in ("true", "false", "1", "0"):
            raise RegistryError("failed is true or false")
        rows = await self._call("deliveries", actor, request.match_info["name"],
                                failed in ("true", "1"), limit)
        return json_response({"deliveries": rows})

    async def redeliver(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        delivery_id = parse_uint(request.match_info["id"])
        if delivery_id is None:
            raise RegistryError("a delivery id is a whole number")
        return json_response(await self._call("redeliver", actor, delivery_id))
