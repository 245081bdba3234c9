"""Feeds the outbox to consumers: at least once, in id order, each from its own durable cursor.

A transactional consumer writes with the connection of the cursor's advance, so its writes and
the cursor commit together (with writes keyed by event id that is effectively exactly once).
Any other consumer is handed one event at a time and the cursor moves after each: it sees an
event again only if the process dies between the hand-over and the advance. A failing consumer
is retried with backoff, holding only its own cursor; events after the failing one wait, so a
consumer never sees a repository's events out of order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from ..metadata.outbox_store import OutboxStore

log = logging.getLogger("moorage.events")
BATCH = 500


class Consumer(Protocol):
    """Something the dispatcher feeds; `name` keys its cursor."""

    name: str
    transactional: bool

    def handle(self, events: list[dict[str, Any]], conn: Any) -> None:
        """Handle events in id order; `conn` is the cursor's transaction (transactional only)."""


def deliver(store: OutboxStore, consumer: Consumer, batch: int = BATCH) -> int:
    """One round: hand the events after the consumer's cursor over; how many it took."""
    position = store.cursor(consumer.name)
    pending = store.read(position, batch)
    if not pending:
        return 0
    if consumer.transactional:
        last = pending[-1]["id"]
        if not store.advance(consumer.name, position, last,
                             lambda conn: consumer.handle(pending, conn)):
            return 0  # another process delivered these; the next round reads its cursor
        return len(pending)
    done = 0
    for event in pending:
        consumer.handle([event], None)
        if not store.advance(consumer.name, position, event["id"]):
            break
        position, done = event["id"], done + 1
    return done


def catch_up(store: OutboxStore, consumer: Consumer, rounds: int = 1000) -> None:
    """Deliver until the consumer has seen every event written so far (read-your-writes)."""
    for _ in range(rounds):
        if deliver(store, consumer) == 0 and store.cursor(consumer.name) >= store.last_id():
            return


class Dispatcher:
    """Runs one delivery loop per consumer in the server's event loop."""

    def __init__(
        self,
        store: OutboxStore,
        consumers: list[Consumer],
        poll_interval: float = 0.25,
        start_delay: float = 0.0,
        backoff_max: float = 30.0,
    ) -> None:
        self.store = store
        self.consumers = consumers
        self.poll_interval = poll_interval
        self.start_delay = start_delay
        self.backoff_max = backoff_max
        self._tasks: list[asyncio.Task] = []

    async def _loop(self, consumer: Consumer) -> None:
        await asyncio.sleep(self.start_delay)
        failures = 0
        while True:
            try:
                took = await asyncio.to_thread(deliver, self.store, consumer)
            except Exception:
                failures += 1
                delay = min(self.poll_interval * 2 ** min(failures, 16), self.backoff_max)
                log.exception("event consumer failed; retrying",
                              extra={"consumer": consumer.name, "failures": failures,
                                     "retry_in": round(delay, 2)})
                await asyncio.sleep(delay)
                continue
            failures = 0
            if took == 0:
                await asyncio.sleep(self.poll_interval)

    def start(self) -> None:
        """Start the delivery loops (call inside the running event loop)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._loop(c)) for c in self.consumers]

    async def stop(self) -> None:
        """Stop the loops, then deliver what is left once (a graceful stop loses nothing)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []
        if self.start_delay > 0:
            return  # held back on purpose (tests): a restart delivers
        for consumer in self.consumers:
            try:
                await asyncio.to_thread(catch_up, self.store, consumer, 20)
            except Exception:
                log.exception("event consumer failed at shutdown; the next start delivers",
                              extra={"consumer": consumer.name})
