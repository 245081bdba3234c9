"""The audit log: who did what, from where, when, and how it ended.

Writes (pushes, deletes, logins, permission changes) are recorded at once; pulls are queued and
written in batches so the pull path never waits for the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..metadata.access_store import AccessStore

log = logging.getLogger(__name__)
FLUSH_EVERY = 1.0
MAX_QUEUE = 50_000


class AuditLog:
    """Record audit events; `start()`/`stop()` run the batch writer in the current event loop."""

    def __init__(self, store: AccessStore) -> None:
        self.store = store
        self._queue: list[dict[str, Any]] = []
        self._task: asyncio.Task | None = None

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
        """Record later, in the next batch (pulls)."""
        if len(self._queue) < MAX_QUEUE:
            self._queue.append(self.event(**fields))
        else:
            log.warning("audit queue full, dropping a pull event")

    async def record(self, **fields: Any) -> None:
        """Record now (writes, deletes, logins, denials, permission changes)."""
        await asyncio.to_thread(self.store.append_audit, [self.event(**fields)])

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
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.flush()
