"""/healthz (the process answers) and /readyz (database and blob storage answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from ..storage.base import BlobStore


class Health:
    """Liveness and readiness of one server process, for load balancers and orchestrators."""

    def __init__(self, check_database: Callable[[], None], blob_store: BlobStore,
                 timeout: float = 5.0) -> None:
        self.check_database, self.blob_store, self.timeout = check_database, blob_store, timeout

    async def live(self, request: web.Request) -> web.StreamResponse:
        """200 while the process serves requests."""
        return web.json_response({"status": "ok"})

    async def ready(self, request: web.Request) -> web.StreamResponse:
        """200 when the database and the blob store answer, else 503 with what failed."""
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
