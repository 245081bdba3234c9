"""What every /api/v1 handler shares: JSON rendering and the audit of refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...auth.authorizer import Action, repository
from ...events.audit import AuditLog
from ...oci.errors import AccessDenied
from ...times import with_rfc3339
from ..auth import audit_denial

if TYPE_CHECKING:
    from ...auth.authorizer import Authorizer
    from .management import ManagementAPI

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


async def require_pull(request: web.Request, management: ManagementAPI,
                       authorizer: Authorizer | None, open_access: bool, name: str,
                       doing: str, served: bool = True) -> None:
    """Refuse unless the caller may pull from repository `name` (an open registry: anyone);
    built without an authorizer or a service (`served` False), refuse everyone."""
    if not open_access:
        actor = await management._actor(request)
        if authorizer is None:
            served = False
        else:
            authorizer.require(actor, Action.PULL, repository(name), doing=doing)
    if not served:
        raise AccessDenied(f"this server cannot {doing}", action=Action.PULL.value,
                           resource=str(repository(name)))
