"""What every /v2/ handler shares: the version header, the actor, bodies, paging; and ping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web

from ...events.types import Actor
from ...oci.digest import Digest
from ...oci.errors import RegistryError
from ..params import parse_uint

T = TypeVar("T")

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


class Base:
    """`/v2/`: the API version check (and, with auth on, the first challenge)."""

    async def ping(self, request: web.Request) -> web.StreamResponse:
        """200 with the API version header: this is an OCI registry."""
        # Clients detect the delta push/pull extension here (and at /v2/_oci/ext/discover).
        return web.json_response({}, headers={**API_VERSION_HEADER,
                                              "Moorage-Extensions": "chunks/v1"})


def actor_of(request: web.Request) -> Actor:
    """Who is asking (the authenticated principal, if any) and from which address."""
    principal = request.get("principal")
    if principal is None:
        return Actor(None, None, request.remote)
    return Actor(principal.name, principal.kind, request.remote)


def request_body(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives (never read whole); when the client goes away mid-body,
    the bytes that did arrive come first, then the error."""
    return _arrived(request.content)


async def _arrived(content: Any) -> AsyncIterator[bytes]:
    try:
        async for data in content.iter_any():
            yield data
    except ConnectionResetError:
        # aiohttp drops what it had buffered once the connection is lost; an upload keeps a
        # broken PATCH's bytes (its client then sends only the rest), so hand them over
        rest = _buffered(content)
        if rest:
            yield rest
        raise


def _buffered(content: Any) -> bytes:
    """What a StreamReader holds unread (empty if it is not the aiohttp one we know)."""
    parts = list(getattr(content, "_buffer", ()) or ())
    offset = getattr(content, "_buffer_offset", 0)
    if not parts or not all(isinstance(p, bytes | bytearray) for p in parts):
        return b""
    parts[0] = parts[0][offset:]
    content._buffer.clear()
    return b"".join(parts)


def request_length(request: web.Request) -> int | None:
    """The declared body length; 0 without a body, None when streamed (chunked)."""
    if request.content_length is not None:
        return request.content_length
    return None if request.can_read_body else 0


def page_params(
    request: web.Request, page_size_max: int, default: int | None = None
) -> tuple[int, str | None]:
    """(limit, last) of a paged listing: `n` capped at `page_size_max`, `last` as given."""
    raw = request.query.get("n")
    if raw is None:
        limit = default or page_size_max
    else:
        n = parse_uint(raw)
        if n is None:
            raise RegistryError(f"invalid page size n={raw[:20]!r}")
        limit = min(n, page_size_max)
    return limit, request.query.get("last")


def listing_response(
    request: web.Request, body: dict[str, Any], key: str, names: list[str], limit: int
) -> web.Response:
    """`body` with `names[:limit]` under `key`, and a `Link rel="next"` if there were more."""
    headers: dict[str, str] = {}
    if len(names) > limit:
        names = names[:limit]
        headers["Link"] = (
            f'<{request.path}?n={limit}&last={quote(names[-1], safe="")}>; rel="next"'
        )
    body[key] = names
    return web.json_response(body, headers=headers)


def blob_created(name: str, digest: Digest) -> web.Response:
    """201 for a blob now in `name` (pushed or mounted), with its location and digest."""
    return web.Response(
        status=201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": str(digest),
            "Content-Length": "0",
        },
    )


async def read(inline: bool, fn: Callable[..., T], *args: Any) -> T:
    """Run a service read on the event loop when `inline` (embedded SQLite), else in a thread."""
    if inline:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)
