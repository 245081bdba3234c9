"""OIDC workload identity routes of the management API (/api/v1/oidc/...) for server admins;
authentication as in the management API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...oci.errors import RegistryError
from ..params import parse_uint
from .common import RouteEntry, json_response
from .management import ManagementAPI

if TYPE_CHECKING:
    from ...auth.oidc import OidcService


class OidcAPI:
    """Thin handlers over OidcService (built on first use: the request path never loads it
    for a server that has no OIDC calls)."""

    def __init__(self, oidc: Callable[[], OidcService] | None, management: ManagementAPI) -> None:
        self.oidc = oidc
        self.management = management

    def routes(self) -> list[RouteEntry]:
        """(method, path, handler) of this API, as the route table (web/routes.py) lists them."""
        from ..routes import routes_of  # the table imports this module

        return routes_of(self)

    async def _call(self, name: str, *args: Any) -> Any:
        if self.oidc is None:  # built only to list its routes (OpenAPI check)
            raise RegistryError("OIDC is not served here")
        fn: Callable[..., Any] = getattr(self.oidc(), name)
        return await asyncio.to_thread(fn, *args)

    async def list_issuers(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        return json_response({"issuers": await self._call("list_issuers", actor)})

    async def get_issuer(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        return json_response(await self._call("get_issuer", actor, _id(request, "issuer")))

    async def remove_issuer(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        await self._call("remove_issuer", actor, _id(request, "issuer"))
        return web.Response(status=204)

    async def add_rule(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        body = await self.management._json(request)
        issuer, claims, permissions = body.get("issuer"), body.get("claims"), body.get(
            "permissions")
        audience, jwks, jwks_url = body.get("audience"), body.get("jwks"), body.get("jwks_url")
        if not isinstance(issuer, str) or not issuer:
            raise RegistryError("'issuer' is required and must be a string")
        for key, value in (("audience", audience), ("jwks_url", jwks_url)):
            if value is not None and not isinstance(value, str):
                raise RegistryError(f"{key!r} must be a string")
        if jwks is not None:
            if not isinstance(jwks, dict):
                raise RegistryError("'jwks' is a JWKS document (an object with \"keys\")")
            jwks = json.dumps(jwks)
        result = await self._call("add_rule", actor, issuer, claims, permissions, audience,
                                  jwks, jwks_url)
        return json_response(result, status=201)

    async def remove_rule(self, request: web.Request) -> web.Response:
        actor = await self.management._actor(request)
        await self._call("remove_rule", actor, _id(request, "rule"))
        return web.Response(status=204)


def _id(request: web.Request, what: str) -> int:
    value = parse_uint(request.match_info["id"])
    if value is None:
        raise RegistryError(f"an OIDC {what} id is a whole number")
    return value
