"""Appending events that are a change of their own (logins, denials, management operations).

Events of data changes are appended by the metadata stores inside the change's transaction:
the services pass `to_record()` rows (or a factory for facts only the transaction knows).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..metadata.outbox_store import OutboxStore
from .types import Event, records


class Outbox:
    """Append events in their own transaction."""

    def __init__(self, store: OutboxStore) -> None:
        self.store = store

    def emit(self, *events: Event) -> None:
        """Append now (blocking)."""
        self.store.append_events(records(*events))

    async def emit_async(self, *events: Event) -> None:
        """Append from the event loop, in a worker thread."""
        await asyncio.to_thread(self.store.append_events, records(*events))

    def since(self, after_id: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Events with ids above `after_id`, oldest first (what `events tail` shows)."""
        return self.store.read(after_id, limit)

    def latest(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` events, oldest first."""
        return self.store.latest(limit)

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """The events consumers gave up on (newest `limit`, oldest first)."""
        return self.store.dead_letters(limit)

    def prune(self, retention: float, now: float) -> int:
        """Delete events older than `retention` seconds that every consumer has handled."""
        return self.store.prune(now - retention)
