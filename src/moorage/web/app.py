"""The aiohttp application: wiring services to routes, and rendering every error in one place."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import ClientPayloadError, web
from aiohttp.typedefs import Middleware

from ..bootstrap import Registry, open_registry
from ..config import Settings, proxy_networks
from ..oci.errors import RegistryError
from .api import (
    DedupAPI,
    DistributionAPI,
    InsightsAPI,
    JobsAPI,
    LifecycleAPI,
    ManagementAPI,
    ModelsAPI,
    OidcAPI,
    RateLimitsAPI,
    ScansAPI,
    WebhooksAPI,
    audited_denials,
)
from .auth import AccessGuard, OpenAccess
from .client import client_address_middleware, forwarded_origin_middleware
from .health import Health
from .metrics import MetricsEndpoint, metrics_middleware
from .ratelimit import RateGate
from .routes import ROUTES, V2Table, bind_all, router_path
from .token import TokenEndpoint
from .ui import AdminPages, Pages, SsoPages
from .v2.base import API_VERSION_HEADER, Base
from .v2.blobs import Blobs
from .v2.catalog import Catalog
from .v2.delta import Delta
from .v2.dispatch import V2Dispatcher
from .v2.manifests import Manifests
from .v2.referrers import Referrers
from .v2.tags import Tags
from .v2.uploads import Uploads

log = logging.getLogger("moorage.http")
READ_BUFSIZE = 1 << 20


def error_response(request: web.Request, exc: RegistryError) -> web.Response:
    """The spec's JSON error body with the error's status and headers."""
    headers = {**API_VERSION_HEADER, **exc.headers}
    if request.method == "HEAD":
        return web.Response(status=exc.status, headers=headers)
    return web.Response(
        status=exc.status,
        body=json.dumps(exc.to_body()).encode(),
        content_type="application/json",
        headers=headers,
    )


def _log_request(request: web.Request, status: int, started: float, access_log: bool) -> None:
    if not access_log and status < 400 and request.method in ("GET", "HEAD"):
        return
    level = logging.WARNING if status >= 500 else logging.INFO
    log.log(
        level,
        "request",
        extra={
            "method": request.method,
            "path": request.path,
            "status": status,
            "ms": round((time.perf_counter() - started) * 1000, 2),
            "remote": request.remote,
        },
    )


def make_app(settings: Settings, registry: Registry | None = None) -> web.Application:
    """Build the registry application for one worker process (routes over the services of
    `registry`, by default the one the settings describe)."""
    reg = registry or open_registry(settings)
    # Accounts exist and the management API checks them even on an open (`--no-auth`) registry;
    # only /v2/ is opened, by the guard's twin.
    guard = (AccessGuard(reg.auth, reg.authorizer, reg.authority, reg.audit, settings.token_realm)
             if settings.auth else OpenAccess())
    pulls, uploads, dispatcher = reg.pulls, reg.uploads, reg.dispatcher
    gate = RateGate(reg.rate_limiter)
    handlers = bind_all(ROUTES, _handler_objects(settings, reg, guard, gate))

    @web.middleware
    async def errors(request: web.Request, handler):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            response = await handler(request)
        except RegistryError as exc:
            response = error_response(request, exc)
            log.info(
                "request failed",
                extra={"method": request.method, "path": request.path, "status": exc.status,
                       "code": exc.code, "reason": exc.message},
            )
            return response
        except web.HTTPException as exc:
            if exc.status == 404:
                missing = RegistryError("no such endpoint")
                missing.status = 404
                return error_response(request, missing)
            raise
        except (ConnectionResetError, ClientPayloadError) as exc:
            # The client went away mid-body: nothing was acknowledged, nothing to answer.
            log.info("client disconnected", extra={"method": request.method, "path": request.path,
                                                   "reason": str(exc)[:200]})
            return web.Response(status=400)
        except Exception:
            log.exception("unhandled error", extra={"method": request.method, "path": request.path})
            return web.json_response(
                {"errors": [{"code": "UNKNOWN", "message": "internal server error"}]}, status=500
            )
        _log_request(request, response.status, started, settings.access_log)
        return response

    middlewares: list[Middleware] = [metrics_middleware(), errors]
    proxies = proxy_networks(settings.trusted_proxies)
    if proxies:
        middlewares.insert(0, client_address_middleware(proxies))
    if settings.trust_proxy_headers:
        middlewares.insert(0, forwarded_origin_middleware(proxies))
    app = web.Application(
        middlewares=middlewares, handler_args={"read_bufsize": READ_BUFSIZE}
    )
    v2 = V2Dispatcher(V2Table(ROUTES), handlers, guard, reg.audit, reg.caches.mirror, gate)
    app.router.add_route("*", "/v2", v2.dispatch)
    app.router.add_route("*", "/v2/{tail:.*}", v2.dispatch)
    for route in ROUTES:
        if route.is_v2:
            continue
        handler = handlers[route]
        if route.path.startswith("/api/") or route.path == "/metrics":
            handler = audited_denials(reg.audit, handler)
        app.router.add_route(route.method, router_path(route), handler)
    # Background work (retention + GC, upload expiry, …) runs as jobs, here unless --no-jobs.
    runner = reg.job_runner() if settings.jobs_in_server else None

    async def _start(_app: web.Application) -> None:
        dispatcher.start()
        pulls.start()
        await asyncio.to_thread(reg.ensure_schedules)
        if runner is not None:
            runner.start()

    async def _close(_app: web.Application) -> None:
        if runner is not None:
            await runner.stop(settings.shutdown_timeout)
        await pulls.stop()  # pull events into the outbox, then deliver what is left
        await dispatcher.stop()
        await reg.pull_through.close()
        reg.close()

    async def _drain(_app: web.Application) -> None:
        # Runs before aiohttp waits for in-flight requests: streaming PATCHes checkpoint and end.
        uploads.drain()

    app.on_startup.append(_start)
    app.on_shutdown.append(_drain)
    app.on_cleanup.append(_close)
    return app


def _handler_objects(settings: Settings, reg: Registry, guard: AccessGuard | OpenAccess,
                     gate: RateGate) -> list[object]:
    """One object per handler class of the route table, over the registry's services."""
    management = ManagementAPI(reg.auth, reg.admin, reg.audit, reg.authority)
    inline = reg.database.reads_inline  # one-row reads on the loop for embedded SQLite
    front = reg.front  # the services, decorated by the pull-through cache
    return [
        Base(),
        Catalog(reg.catalog, settings.page_size_max),
        Tags(front.manifests, settings.page_size_max, inline),  # type: ignore[arg-type]
        Manifests(front.manifests, inline),  # type: ignore[arg-type]
        Uploads(front.uploads, guard, settings.chunk_min_length),  # type: ignore[arg-type]
        Blobs(front.blobs, inline),  # type: ignore[arg-type]
        Delta(lambda: reg.chunks),
        Referrers(front.referrers, settings.page_size_max),  # type: ignore[arg-type]
        TokenEndpoint(reg.auth, reg.authorizer, reg.authority, reg.audit, gate),
        RateLimitsAPI(reg.rate_limits, management),
        management,
        LifecycleAPI(reg.policies, reg.retention, reg.deletion, reg.gc, management),
        DedupAPI(lambda: reg.chunks, management, open_access=not settings.auth),
        JobsAPI(reg.jobs, management, reg.authorizer),
        WebhooksAPI(reg.webhooks, management),
        OidcAPI(lambda: reg.oidc, management),
        DistributionAPI(reg.upstreams, reg.caches, management),
        ModelsAPI(reg.models, management, open_access=not settings.auth),
        ScansAPI(lambda: reg.scans, management, reg.authorizer, open_access=not settings.auth),
        InsightsAPI(lambda: reg.insights, management, reg.authorizer,
                    open_access=not settings.auth),
        Health(reg.check_database, reg.blob_store),
        MetricsEndpoint(reg.exposition()),
        Pages(reg, settings.auth, gate),
        AdminPages(reg, settings.auth),
        SsoPages(reg, settings.auth),
    ]
