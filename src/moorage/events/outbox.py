"""The outbox as the services and the dispatcher see it: events, the consumers' cursors, their
leases and dead letters, each operation its own unit of work.

Events of a change are emitted by the change's own write (`uow.emit`), so they commit
together; `emit` here is for an event that is a change of its own (a denial that changes
nothing).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..metadata.uow import Database, UnitOfWork
from .types import Event, records


class _Moved(Exception):
    """Another process advanced the cursor first (rolls the transaction back)."""


class _Window:
    """The newest events this process has read, decoded once for every consumer.

    It holds every event with an id in (`low`, `high`]: a read of "ids above X" sees every
    event up to the last one it returns (appends become visible in id order), so the events
    a read returns extend the window when X lies inside it. Consumers only read the dicts.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.low = self.high = -1
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def after(self, after_id: int, limit: int) -> list[dict[str, Any]] | None:
        """The held events above `after_id` (None when `after_id` is outside the window)."""
        if not self.low <= after_id <= self.high:
            return None
        return [e for e in self.events if e["id"] > after_id][:limit]

    def extend(self, after_id: int, read: list[dict[str, Any]]) -> None:
        """Add what a read of "ids above `after_id`" returned (a read from inside the window
        extends it; from ahead of it, starts it again)."""
        if not read:
            return
        if self.low <= after_id <= self.high:
            self.events += read
        else:
            self.low, self.events = after_id, list(read)
        self.high = int(read[-1]["id"])
        if len(self.events) > self.capacity:
            dropped = len(self.events) - self.capacity
            self.low = int(self.events[dropped - 1]["id"])
            del self.events[:dropped]


class Outbox:
    """Reads and cursor moves of the outbox on the registry's database."""

    def __init__(self, database: Database, window: int = 1000) -> None:
        self.database = database
        self._window = _Window(window)

    # -- events -------------------------------------------------------------------------------

    def emit(self, *events: Event) -> None:
        """Append events in a write of their own (blocking)."""
        with self.database.write() as uow:
            uow.emit(records(*events))

    async def emit_async(self, *events: Event) -> None:
        """Append from the event loop, in a worker thread."""
        await asyncio.to_thread(self.emit, *events)

    def since(self, after_id: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Events with ids above `after_id`, oldest first (what `events tail` shows)."""
        with self.database.read() as uow:
            return uow.outbox.read(after_id, limit)

    def pending(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        """`since` for the dispatcher: the consumers of this process read the same events, which
        are read and decoded once; a consumer far behind the others reads around the window."""
        window = self._window
        with window.lock:
            held = window.after(after_id, limit)
            if held is None:
                read = self.since(after_id, limit)
                if after_id > window.high:
                    window.extend(after_id, read)
                return read
            if len(held) == limit:
                return held
            start = window.high
            read = self.since(start, limit - len(held))
            window.extend(start, read)
            return held + read

    def latest(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` events, oldest first."""
        with self.database.read() as uow:
            return uow.outbox.latest(limit)

    def last_id(self) -> int:
        """The id of the newest event (0 when there is none)."""
        with self.database.read() as uow:
            return uow.outbox.last_id()

    def prune(self, retention: float, now: float) -> tuple[int, int]:
        """Delete events older than `retention` seconds that every consumer has handled, and
        dead letters older than that; (events, dead letters) deleted."""
        with self.database.write() as uow:
            before = now - retention
            return uow.outbox.prune(before), uow.outbox.prune_dead_letters(before)

    # -- cursors ------------------------------------------------------------------------------

    def cursor(self, consumer: str) -> int:
        """The last event id `consumer` has handled; 0 for a consumer seen for the first time."""
        with self.database.read() as uow:
            value = uow.outbox.cursor(consumer)
        if value is not None:
            return value
        with self.database.write() as uow:
            uow.outbox.create_cursor(consumer)
            return uow.outbox.cursor(consumer) or 0

    def cursors(self) -> dict[str, int]:
        """Every consumer's position."""
        with self.database.read() as uow:
            return uow.outbox.cursors()

    def advance(self, consumer: str, expected: int, new: int,
                apply: Callable[[UnitOfWork], None] | None = None) -> bool:
        """Move the cursor from `expected` to `new` and run `apply(uow)` in that transaction.

        False (and nothing written) when another process moved the cursor first. The move
        comes first: on PostgreSQL its row lock makes a concurrent advance wait, then miss.
        """
        try:
            with self.database.write() as uow:
                if not uow.outbox.move_cursor(consumer, expected, new):
                    raise _Moved
                if apply is not None:
                    apply(uow)
        except _Moved:
            return False
        return True

    def take_lease(self, consumer: str, holder: str, seconds: float, now: float) -> bool:
        """Hold (or renew) `consumer`'s lease for `seconds`; False while another holder's lease
        runs."""
        self.cursor(consumer)  # the row exists
        with self.database.write() as uow:
            return uow.outbox.take_lease(consumer, holder, seconds, now)

    def release_lease(self, consumer: str, holder: str) -> None:
        """Give `consumer`'s lease up (another process may take it at once)."""
        with self.database.write() as uow:
            uow.outbox.release_lease(consumer, holder)

    # -- dead letters -------------------------------------------------------------------------

    def dead_letter(self, consumer: str, expected: int, event: Mapping[str, Any],
                    attempts: int, error: str, now: float) -> bool:
        """Record `event` as one `consumer` gave up on and move its cursor past it, in one
        transaction; False when another process moved the cursor first."""
        return self.advance(consumer, expected, int(event["id"]),
                            lambda uow: uow.outbox.add_dead_letter(consumer, event, attempts,
                                                                   error, now))

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """The events consumers gave up on (newest `limit`, oldest first)."""
        with self.database.read() as uow:
            return uow.outbox.dead_letters(limit)
