"""Pull times and pull events, noted in memory on the request path and written in batches."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from ..events.types import Actor, ManifestPulled
from ..metadata.uow import Database

log = logging.getLogger("moorage.lifecycle")
EVENT_FLUSH_SECONDS = 1.0  # pull events wait in memory at most this long
MAX_PENDING_PULLS = 100_000


class PullRecorder:
    """Pulls, kept in memory: a ManifestPulled event per pull, written at least every second,
    and the last pull time per tag and digest, every `flush_every` (both on a graceful stop)."""

    def __init__(self, database: Database, flush_every: float) -> None:
        self.database = database
        self.flush_every = flush_every
        self._times_due = time.monotonic() + flush_every
        self._pending: dict[tuple[str, str], float] = {}
        self._events: list[dict[str, Any]] = []
        # Pulls are noted from the request threads and taken for a flush on the event loop.
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    def record(self, repository: str, reference: str, actor: Actor | None = None) -> None:
        """Note a pull (with an actor: also a pull event); O(1), no I/O, from any thread."""
        event = None
        if actor is not None:
            is_digest = bool(reference.count(":"))
            event = ManifestPulled(
                actor=actor, repository=repository, reference=reference,
                tag=None if is_digest else reference, digest=reference if is_digest else None,
            ).to_record()
        with self._lock:
            if len(self._pending) < MAX_PENDING_PULLS:
                self._pending[(repository, reference)] = time.time()
            if event is None:
                return
            if len(self._events) < MAX_PENDING_PULLS:
                self._events.append(event)
                return
        log.warning("pull events pile up; dropping one", extra={"repository": repository})

    def write(self, pulls: dict[tuple[str, str], float], events: list[dict[str, Any]]) -> None:
        """Store pull times and pull events in one transaction."""
        with self.database.write() as uow:
            uow.pulls.record_pulls(pulls)
            if events:
                uow.emit(events)

    async def flush(self, times: bool = True) -> None:
        """Write the pull events noted so far (and with `times` the pull times), in one
        transaction."""
        batch: dict[tuple[str, str], float] = {}
        with self._lock:
            if times:
                batch, self._pending = self._pending, {}
                self._times_due = time.monotonic() + self.flush_every
            pulled, self._events = self._events, []
        if batch or pulled:
            try:
                await asyncio.to_thread(self.write, batch, pulled)
            except Exception:
                log.exception("could not record pulls", extra={"pulls": len(batch)})
                # Kept for the next flush: pull events are not to be lost on a passing error.
                with self._lock:
                    self._events = pulled + self._events

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(min(self.flush_every, EVENT_FLUSH_SECONDS))
            await self.flush(times=time.monotonic() >= self._times_due)

    def start(self) -> None:
        """Flush in the background of the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop flushing in the background and write what is left."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.flush()
