"""Request metrics (one middleware) and the /metrics endpoint (Prometheus text exposition).

/metrics is PUBLIC, as it has always been (web/routes.py): it names namespaces, repositories
and job kinds but no content; restrict it at the reverse proxy where that matters.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from ..metrics.exposition import Exposition
from ..metrics.instruments import Instruments, instruments

ROUTE_KEY = "moorage.route"  # the route table's pattern of a /v2/ request (set by its dispatcher)
REPOSITORY_KEY = "moorage.repository"
UNMATCHED = "unmatched"
_MANIFEST_ROUTE = "/v2/{name}/manifests/{reference}"
_BLOB_ROUTE = "/v2/{name}/blobs/{digest}"
_FETCH_ROUTE = "/v2/{name}/moorage/chunks/fetch"  # a delta pull's chunk bytes
_UPLOAD_METHODS = ("POST", "PATCH", "PUT")


def route_of(request: web.Request) -> str:
    """The route table's pattern the request matched (never the raw path), or `unmatched`."""
    route = request.get(ROUTE_KEY)
    if route is not None:
        return str(route)
    resource = request.match_info.route.resource
    if resource is None or resource.canonical.startswith("/v2"):
        return UNMATCHED  # /v2/ paths the dispatcher found no route for
    return resource.canonical


def metrics_middleware() -> Middleware:
    """Count and time every request by route pattern, method and status; blob bytes in and out;
    uploads in flight; manifest pushes and pulls per repository."""
    m = instruments()

    @web.middleware
    async def measure(request: web.Request, handler):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        uploading = request.method in _UPLOAD_METHODS and "/blobs/uploads/" in request.path
        # the chunk batches of a delta push are blob bytes received too
        receiving = uploading or (request.method == "POST"
                                  and request.path.endswith("/moorage/chunks"))
        if uploading:
            m.uploads_in_flight.inc()
        status, response = 500, None
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            if uploading:
                m.uploads_in_flight.dec()
            if receiving:
                m.bytes_received.inc(request.content.total_bytes)
            _record(m, request, status, time.perf_counter() - started, response)

    return measure


def _record(m: Instruments, request: web.Request, status: int, seconds: float,
            response: web.StreamResponse | None) -> None:
    route, method = route_of(request), request.method
    m.requests.labels(route, method, str(status)).inc()
    m.duration.labels(route, method).observe(seconds)
    repository = request.get(REPOSITORY_KEY)
    if route == _MANIFEST_ROUTE and repository:
        if method == "PUT" and status == 201:
            m.pushes.labels(repository).inc()
        elif method == "GET" and status == 200:
            m.pulls.labels(repository).inc()
    elif (route in (_BLOB_ROUTE, _FETCH_ROUTE) and method in ("GET", "POST")
          and status in (200, 206)
          and response is not None and response.content_length):
        m.bytes_sent.inc(response.content_length)


class MetricsEndpoint:
    """`GET /metrics`: every worker's request metrics and the registry gauges, in one scrape."""

    def __init__(self, exposition: Exposition) -> None:
        self.exposition = exposition

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path, handler) of this endpoint, as the route table lists them."""
        from .routes import routes_of  # the table imports this module

        return routes_of(self)

    async def scrape(self, request: web.Request) -> web.Response:
        """Prometheus text exposition format (version 0.0.4)."""
        body = await asyncio.to_thread(self.exposition.render)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_PLAIN_0_0_4  # every Prometheus version reads it
        return response


def login_failed() -> None:
    """Count one refused login."""
    instruments().login_failures.inc()


def rate_limited(kind: str) -> None:
    """Count one request refused by a rate limit (`kind`: pull, push or login)."""
    instruments().ratelimited.labels(kind).inc()


def token_issued() -> None:
    """Count one issued bearer token."""
    instruments().tokens_issued.inc()


async def serve_metrics(exposition: Exposition, host: str, port: int) -> web.AppRunner:
    """A bare /metrics endpoint on HOST:PORT, for a process that serves nothing else (`moorage
    worker`); clean the runner up to stop it."""
    endpoint = MetricsEndpoint(exposition)
    app = web.Application()
    app.router.add_get("/metrics", endpoint.scrape)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
