"""The management API under /api/v1/ (JSON; Basic or Bearer auth), described by openapi.json."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ...auth.admin import AdminService
from ...auth.service import AuthService, Principal
from ...auth.tokens import InvalidToken, TokenAuthority
from ...events.audit import AuditLog
from ...oci import strictjson
from ...oci.errors import RegistryError, Unauthorized
from ...times import parse_time, with_rfc3339
from ..auth import parse_basic
from ..bodies import read_bounded
from ..params import parse_uint
from .common import RouteEntry, json_response

OPENAPI_PATH = Path(__file__).parents[1] / "openapi.json"
MAX_BODY = 64 * 1024
AUDIT_EXPORT_PAGE = 1000


class ManagementAPI:
    """Thin handlers over AdminService."""

    def __init__(self, auth: AuthService, admin: AdminService, audit: AuditLog,
                 authority: TokenAuthority) -> None:
        self.auth = auth
        self.authority = authority
        self.audit_log = audit
        self.admin = admin

    def routes(self) -> list[RouteEntry]:
        """(method, path, handler) of this API, as the route table (web/routes.py) lists them."""
        from ..routes import routes_of  # the table imports this module

        return routes_of(self)

    async def _actor(self, request: web.Request) -> Principal:
        principal = await self._authenticate(request)
        request["principal"] = principal
        return principal

    async def _authenticate(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Basic realm="moorage"'}
        if scheme.lower() == "basic":
            parsed = parse_basic(credentials)
            if parsed is None:
                raise Unauthorized("malformed basic credentials", headers=challenge)
            try:
                return await self.auth.login(parsed[0], parsed[1], request.remote)
            except Unauthorized as exc:
                raise Unauthorized(exc.message, headers=challenge) from None
        if scheme.lower() == "bearer":
            try:
                claims = self.authority.verify(credentials.strip())
            except InvalidToken:
                raise Unauthorized("invalid or expired token", headers=challenge) from None
            return await asyncio.to_thread(self.auth.principal_from_claims, claims.kind,
                                           claims.subject)
        raise Unauthorized(headers=challenge)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _json(self, request: web.Request) -> dict[str, Any]:
        raw = await read_bounded(request, MAX_BODY)
        try:
            body = strictjson.loads(raw or b"{}")
        except strictjson.JsonInvalid as exc:
            raise RegistryError(f"request body is not JSON: {exc.message}") from None
        if not isinstance(body, dict):
            raise RegistryError("request body must be a JSON object")
        return body

    # -- users --------------------------------------------------------------------------------

    async def list_users(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        return json_response({"users": await self._call(self.admin.list_users, actor)})

    async def add_user(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        body = await self._json(request)
        await self._call(self.admin.add_user, actor, _str(body, "name"), _str(body, "password"),
                         _bool(body, "admin", False))
        return json_response({"name": body["name"]}, status=201)

    async def update_user(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        body = await self._json(request)
        name = request.match_info["name"]
        await self._call(self.admin.update_user, actor, name,
                         _str(body, "password") if "password" in body else None,
                         _bool(body, "disabled") if "disabled" in body else None)
        return json_response({"name": name})

    # -- namespaces ---------------------------------------------------------------------------

    async def list_namespaces(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        return json_response(
            {"namespaces": await self._call(self.admin.list_namespaces, actor)})

    async def add_namespace(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        body = await self._json(request)
        await self._call(self.admin.add_namespace, actor, _str(body, "name"),
                         str(body.get("visibility", "private")))
        return json_response({"name": body["name"]}, status=201)

    async def get_namespace(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        return json_response(
            await self._call(self.admin.get_namespace, actor, request.match_info["name"]))

    async def update_namespace(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        body = await self._json(request)
        visibility = body.get("visibility")
        if visibility is not None and not isinstance(visibility, str):
            raise RegistryError("'visibility' must be a string")
        return json_response(await self._call(
            self.admin.update_namespace, actor, request.match_info["name"], visibility,
            _bool(body, "robot_only_push", None)))

    async def put_member(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        body = await self._json(request)
        await self._call(self.admin.set_member, actor, request.match_info["name"],
                         request.match_info["user"], _str(body, "role"))
        return json_response({"user": request.match_info["user"], "role": body["role"]})

    async def delete_member(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        await self._call(self.admin.set_member, actor, request.match_info["name"],
                         request.match_info["user"], None)
        return web.Response(status=204)

    # -- robots -------------------------------------------------------------------------------

    async def list_robots(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        return json_response({"robots": await self._call(self.admin.list_robots, actor)})

    async def add_robot(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        body = await self._json(request)
        permissions = body.get("permissions")
        if not isinstance(permissions, dict) or not all(
            isinstance(v, list) and all(isinstance(a, str) for a in v)
            for v in permissions.values()
        ):
            raise RegistryError('permissions must look like {"namespace": ["pull", "push"]}')
        expires_in = body.get("expires_in")
        if expires_in is not None and (not isinstance(expires_in, int | float) or expires_in <= 0):
            raise RegistryError("expires_in is a positive number of seconds")
        created = await self._call(self.admin.add_robot, actor, _str(body, "name"), permissions,
                                   expires_in, body.get("description"))
        return json_response(created, status=201)

    async def revoke_robot(self, request: web.Request) -> web.Response:
        actor = await self._actor(request)
        await self._call(self.admin.revoke_robot, actor, request.match_info["name"])
        return web.Response(status=204)

    # -- audit --------------------------------------------------------------------------------

    async def audit(self, request: web.Request) -> web.StreamResponse:
        actor = await self._actor(request)
        q = request.query
        numbers = {key: q[key] for key in ("limit", "cursor") if key in q}
        parsed = {key: parse_uint(v) for key, v in numbers.items()}
        if any(v is None for v in parsed.values()):
            raise RegistryError("limit and cursor are whole numbers (ASCII digits)")
        try:
            since = parse_time(q["since"]) if "since" in q else None
            until = parse_time(q["until"]) if "until" in q else None
        except ValueError:
            raise RegistryError("since and until are RFC 3339 times or Unix seconds") from None
        given = parsed.get("limit")
        limit = min(100 if given is None else given, 1000)
        filters = {
            "actor": q.get("actor"),
            "action": q.get("action"),
            "repository": q.get("repository"),
            "outcome": q.get("outcome"),
            "since": since,
            "until": until,
            "before_id": parsed.get("cursor"),
        }
        if q.get("format") == "jsonl" and "limit" not in q:
            return await self._export_audit(request, actor, filters)
        events = await self._call(self.admin.audit_events, actor, limit=limit, **filters)
        if q.get("format") == "jsonl":
            body = "".join(json.dumps(with_rfc3339(e)) + "\n" for e in events)
            return web.Response(text=body, content_type="application/x-ndjson")
        result: dict[str, Any] = {"events": events}
        if events and len(events) == limit:
            result["next_cursor"] = events[-1]["id"]
        return json_response(result)

    async def _export_audit(self, request: web.Request, actor: Principal,
                            filters: dict[str, Any]) -> web.StreamResponse:
        """Every matching event as JSON lines, read and sent a page at a time (an export is
        complete; memory stays flat however long the log)."""
        page = await self._call(self.admin.audit_events, actor, limit=AUDIT_EXPORT_PAGE,
                                **filters)  # before the headers: a denial is still an error
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        while page:
            await response.write(
                "".join(json.dumps(with_rfc3339(e)) + "\n" for e in page).encode())
            if len(page) < AUDIT_EXPORT_PAGE:
                break
            filters = {**filters, "before_id": page[-1]["id"]}
            page = await self._call(self.admin.audit_events, actor, limit=AUDIT_EXPORT_PAGE,
                                    **filters)
        await response.write_eof()
        return response

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=OPENAPI_PATH.read_bytes(), content_type="application/json")


def _str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise RegistryError(f"{key!r} is required and must be a string")
    return value


def _bool(body: dict[str, Any], key: str, default: bool | None = False) -> Any:
    value = body.get(key, default)
    if value is not default and not isinstance(value, bool):
        raise RegistryError(f"{key!r} must be true or false")
    return value
