"""The one entry point of /v2/: match the route table, check the name and the access, call the
handler, and record a refused write (the one place it is recorded)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from ...events.audit import AuditLog
from ...events.types import WriteRefused
from ...oci.digest import is_digest
from ...oci.errors import AccessDenied, RegistryError, Unauthorized
from ...oci.reference import validate_name
from ..auth import AccessGuard, OpenAccess
from ..metrics import REPOSITORY_KEY, ROUTE_KEY
from ..ratelimit import RateGate, rate_kind
from ..routes import AUTHENTICATED, Handler, Route, V2Table
from .base import actor_of

log = logging.getLogger("moorage.http")


class V2Dispatcher:
    """Routes /v2/ requests through the table to their handlers."""

    def __init__(self, table: V2Table, handlers: Mapping[Route, Handler],
                 guard: AccessGuard | OpenAccess, audit: AuditLog,
                 mirror: Callable[[str, str], Awaitable[str]] | None = None,
                 gate: RateGate | None = None) -> None:
        self.table = table
        self.gate = gate
        self.kinds = {route: rate_kind(route) for route in handlers}
        self.mirror = mirror
        self.handlers = handlers
        self.guard = guard
        self.audit = audit

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Find the endpoint for a /v2/ path, check access, and call it (the services append
        the events of what changed; nothing is inferred here)."""
        found = self.table.resolve(request.method, request.path)
        if found is None:
            raise web.HTTPNotFound()
        route, params = found
        name = params.get("name")
        request[ROUTE_KEY], request[REPOSITORY_KEY] = route.path, name
        if name is not None:
            validate_name(name)
            ns = request.query.get("ns")
            if ns and self.mirror is not None:
                # A containerd mirror request (`?ns=upstream.host`): the repository is the one
                # in the cache of that upstream.
                name = params["name"] = await self.mirror(ns, name)
        principal = await self.guard.check(request, name, None if route.action == AUTHENTICATED
                                           else route.action)
        if self.gate is not None and (kind := self.kinds.get(route)) is not None:
            await self.gate.check(request, kind, principal, name)
        try:
            return await self.handlers[route](request, **params)
        except RegistryError as exc:
            if name is not None:
                await self._record_refusal(request, name, params, exc)
            raise

    async def _record_refusal(
        self, request: web.Request, name: str, params: dict[str, str], exc: RegistryError
    ) -> None:
        # A refused write changes nothing, so no service emits its event; the audit log still
        # records the attempt. Denials are the guard's to record (once).
        if isinstance(exc, Unauthorized | AccessDenied):
            return
        action, reference = _write_action(request, params)
        if action is None:
            return
        event = WriteRefused(
            actor=actor_of(request), repository=name, action=action, reference=reference,
            detail={"status": exc.status, "code": exc.code, "reason": exc.message[:300]},
        )
        try:
            await self.audit.outbox.emit_async(event)
        except Exception:  # the client's answer is the refusal, not a failure to record it
            log.exception("could not record a refused write", extra={"repository": name})


def _write_action(request: web.Request, params: dict[str, str]) -> tuple[str | None, str | None]:
    """The audit action and reference of a /v2/ write (None for reads and chunk appends)."""
    method, query = request.method, request.query
    if "reference" in params:
        reference = params["reference"]
        if method == "PUT":
            return "manifest.push", reference
        if method == "DELETE":
            return ("manifest.delete" if is_digest(reference) else "tag.delete"), reference
    elif "upload" in params:
        if method == "PUT":
            return "blob.push", query.get("digest")
    elif "digest" in params and "/referrers/" not in request.path:
        if method == "DELETE":
            return "blob.delete", params["digest"]
    elif method == "POST" and "digest" in query:
        return "blob.push", query["digest"]
    return None, None
