"""What every /api/v1 handler shares: JSON rendering and the audit of refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ...events.audit import AuditLog
from ...oci.errors import AccessDenied
from ...times import with_rfc3339
from ..auth import audit_denial

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RouteEntry = tuple[str, str, Handler]  # (method, path, bound handler)


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON response whose time fields (`time`, `*_at`) are RFC 3339 strings."""
    return web.json_response(with_rfc3339(data), status=status)


def audited_denials(audit: AuditLog, handler: Handler) -> Handler:
    """`handler`, recording each refusal of the Authorizer once (as /v2/ does) on its way out."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except AccessDenied as exc:
            actor = request.get("principal")
            await audit_denial(audit, request, exc, exc.action, None,
                               actor.name if actor else None, actor.kind if actor else None,
                               resource=exc.resource)
            raise

    return wrapped
