"""The audit log: who did what, from where, when, and how it ended.

Events from requests go into an in-process queue that a writer task drains continuously: a
request never waits for the audit write, and under load events are written in batches (so the
pull path stays fast). The queue is flushed on shutdown; only a crash loses what was queued in
its last moments. Events from the CLI and management operations are written synchronously.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..metadata.access_store import AccessStore

log = logging.getLogger(__name__)
MAX_QUEUE = 50_000


class AuditLog:
    """Record audit events; `start()`/`stop()` run the batch writer in the current event loop."""

    def __init__(self, store: AccessStore) -> None:
        self.store = store
        self._queue: list[dict[str, Any]] = []
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None

    def event(
        self,
        action: str,
        outcome: str,
        actor: str | None,
        actor_kind: str | None,
        remote: str | None,
        repository: str | None = None,
        reference: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "time": time.time(),
            "actor": actor,
            "actor_kind": actor_kind,
            "remote": remote,
            "action": action,
            "repository": repository,
            "reference": reference,
            "outcome": outcome,
            "detail": detail,
        }

    def queue(self, **fields: Any) -> None:
        """Record without waiting: the writer task stores it within moments."""
        if len(self._queue) >= MAX_QUEUE:
            log.warning("audit queue full, dropping an event", extra={"action": fields["action"]})
            return
        self._queue.append(self.event(**fields))
        if self._wake is not None:
            self._wake.set()

    async def record(self, **fields: Any) -> None:
        """Record an event from a request handler (queued; see the module docstring)."""
        self.queue(**fields)

    def record_sync(self, **fields: Any) -> None:
        """Record from blocking code such as the CLI."""
        self.store.append_audit([self.event(**fields)])

    async def flush(self) -> None:
        batch, self._queue = self._queue, []
        if batch:
            try:
                await asyncio.to_thread(self.store.append_audit, batch)
            except Exception:
                log.exception("could not write audit batch", extra={"events": len(batch)})

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.flush()
