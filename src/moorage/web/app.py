"""The aiohttp application: wiring services to routes, and rendering every error in one place."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from aiohttp import ClientPayloadError, web

from ..bootstrap import Registry, open_registry
from ..config import Settings, proxy_networks
from ..oci.errors import RegistryError
from ..storage.base import BlobStore
from .api import ManagementAPI, register_management_api
from .auth import AccessGuard, OpenAccess, TokenEndpoint
from .client import client_address_middleware
from .distribution import API_VERSION_HEADER, DistributionAPI
from .jobs_api import JobsAPI, register_jobs_api
from .lifecycle_api import LifecycleAPI, register_lifecycle_api

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


class Health:
    """/healthz (the process answers) and /readyz (database and blob storage answer)."""

    def __init__(self, check_database: Callable[[], None], blob_store: BlobStore,
                 timeout: float = 5.0) -> None:
        self.check_database, self.blob_store, self.timeout = check_database, blob_store, timeout

    async def live(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    async def ready(self, request: web.Request) -> web.StreamResponse:
        checks = {"database": self.check_database, "storage": self.blob_store.check}
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(asyncio.to_thread(check), self.timeout)
                results[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means "send no traffic here"
                results[name] = f"unavailable: {type(exc).__name__}: {str(exc)[:200]}"
        ok = all(v == "ok" for v in results.values())
        return web.json_response(
            {"status": "ok" if ok else "unavailable", "checks": results},
            status=200 if ok else 503,
        )


def make_app(settings: Settings, registry: Registry | None = None) -> web.Application:
    """Build the registry application for one worker process (routes over the services of
    `registry`, by default the one the settings describe)."""
    reg = registry or open_registry(settings)
    # Accounts exist and the management API checks them even on an open (`--no-auth`) registry;
    # only /v2/ is opened, by the guard's twin.
    guard = (AccessGuard(reg.auth, reg.authorizer, reg.authority, reg.audit, settings.token_realm)
             if settings.auth else OpenAccess())
    lifecycle, uploads, dispatcher = reg.lifecycle, reg.uploads, reg.dispatcher
    api = DistributionAPI(
        uploads=uploads,
        blobs=reg.blobs,
        manifests=reg.manifests,
        referrers=reg.referrers,
        chunk_min_length=settings.chunk_min_length,
        page_size_max=settings.page_size_max,
        audit=reg.audit,
        guard=guard,
    )

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
                exc = RegistryError("no such endpoint")
                exc.status = 404
                return error_response(request, exc)
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

    middlewares = [errors]
    if proxies := proxy_networks(settings.trusted_proxies):
        middlewares.insert(0, client_address_middleware(proxies))
    app = web.Application(
        middlewares=middlewares, handler_args={"read_bufsize": READ_BUFSIZE}
    )
    app.router.add_route("*", "/v2", api.dispatch)
    app.router.add_route("*", "/v2/{tail:.*}", api.dispatch)
    tokens = TokenEndpoint(reg.auth, reg.authorizer, reg.authority, reg.audit)
    app.router.add_get("/token", tokens.get)
    app.router.add_post("/token", tokens.post)
    management = ManagementAPI(reg.auth, reg.admin, reg.audit, reg.authority)
    register_management_api(app, management)
    register_lifecycle_api(app, LifecycleAPI(lifecycle, management))
    register_jobs_api(app, JobsAPI(reg.jobs, management, reg.authorizer))
    health = Health(reg.check_database, reg.blob_store)
    app.router.add_get("/healthz", health.live)
    app.router.add_get("/readyz", health.ready)
    # Background work (retention + GC, upload expiry, …) runs as jobs, here unless --no-jobs.
    runner = reg.job_runner() if settings.jobs_in_server else None

    async def _start(_app: web.Application) -> None:
        dispatcher.start()
        lifecycle.pulls.start()
        await asyncio.to_thread(reg.ensure_schedules)
        if runner is not None:
            runner.start()

    async def _close(_app: web.Application) -> None:
        if runner is not None:
            await runner.stop(settings.shutdown_timeout)
        await lifecycle.pulls.stop()  # pull events into the outbox, then deliver what is left
        await dispatcher.stop()
        reg.close()

    async def _drain(_app: web.Application) -> None:
        # Runs before aiohttp waits for in-flight requests: streaming PATCHes checkpoint and end.
        uploads.drain()

    app.on_startup.append(_start)
    app.on_shutdown.append(_drain)
    app.on_cleanup.append(_close)
    return app
