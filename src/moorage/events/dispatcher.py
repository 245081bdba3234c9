"""Feeds the outbox to consumers: at least once, in id order, each from its own durable cursor.

A transactional consumer writes in the unit of work of the cursor's advance, so its writes and
the cursor commit together (with writes keyed by event id that is effectively exactly once).
Any other consumer is handed one event at a time and the cursor moves once per batch (and,
when the consumer fails, past the events it did handle before the error is raised): a process
that dies mid-batch hands that batch over again, so such a consumer must be idempotent (the
post-push consumer is, through its jobs' unique keys). One write per event made every pull
(a ManifestPulled event) cost a write transaction per such consumer. A failing consumer
is retried with backoff, holding only its own cursor; events after the failing one wait, so a
consumer never sees a repository's events out of order.

A transactional consumer that fails on one event (delivered alone after a failed batch)
`max_attempts` times records it as a dead letter (`moorage events failed`) and goes past it: a
poison event blocks nobody for long. A non-transactional consumer runs under a lease (on the
cursor's row), so one process of the whole deployment feeds it at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from ..jobs.queue import worker_name
from .outbox import Outbox

log = logging.getLogger("moorage.events")
BATCH = 500


class Consumer(Protocol):
    """Something the dispatcher feeds; `name` keys its cursor."""

    name: str
    transactional: bool

    def handle(self, events: list[dict[str, Any]], uow: Any) -> None:
        """Handle events in id order; `uow` is the cursor's unit of work (transactional only)."""


def deliver(outbox: Outbox, consumer: Consumer, batch: int = BATCH) -> int:
    """One round: hand the events after the consumer's cursor over; how many it took."""
    position = outbox.cursor(consumer.name)
    pending = outbox.pending(position, batch)
    if not pending:
        return 0
    if consumer.transactional:
        last = pending[-1]["id"]
        if not outbox.advance(consumer.name, position, last,
                             lambda uow: consumer.handle(pending, uow)):
            return 0  # another process delivered these; the next round reads its cursor
        return len(pending)
    done = 0
    try:
        for event in pending:
            consumer.handle([event], None)
            done += 1
    except BaseException:
        if done:
            outbox.advance(consumer.name, position, pending[done - 1]["id"])
        raise
    if not outbox.advance(consumer.name, position, pending[-1]["id"]):
        return 0  # another process moved the cursor (a lost lease): it redelivers from there
    return done


@dataclass
class _Failing:
    """The event a consumer keeps failing on, and how often it did."""

    event_id: int = 0
    attempts: int = 0


def catch_up(outbox: Outbox, consumer: Consumer, rounds: int = 1000) -> None:
    """Deliver until the consumer has seen every event written so far (read-your-writes)."""
    for _ in range(rounds):
        if deliver(outbox, consumer) == 0 and outbox.cursor(consumer.name) >= outbox.last_id():
            return


class Dispatcher:
    """Runs one delivery loop per consumer in the server's event loop."""

    def __init__(
        self,
        outbox: Outbox,
        consumers: list[Consumer],
        poll_interval: float = 0.25,
        start_delay: float = 0.0,
        backoff_max: float = 30.0,
        max_attempts: int = 10,
        lease_seconds: float = 30.0,
        holder: str | None = None,
    ) -> None:
        self.outbox = outbox
        self.consumers = consumers
        self.poll_interval = poll_interval
        self.start_delay = start_delay
        self.backoff_max = backoff_max
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.holder = holder or f"{worker_name()}:{uuid.uuid4().hex[:8]}"
        self._held: dict[str, float] = {}  # consumer → monotonic time its lease needs renewing
        self._tasks: list[asyncio.Task] = []

    def holds(self, consumer: Consumer) -> bool:
        """Take or renew the consumer's lease when due (transactional ones need none)."""
        if consumer.transactional:
            return True
        if time.monotonic() < self._held.get(consumer.name, 0.0):
            return True
        if self.outbox.take_lease(consumer.name, self.holder, self.lease_seconds, time.time()):
            self._held[consumer.name] = time.monotonic() + self.lease_seconds / 3
            return True
        self._held.pop(consumer.name, None)
        return False

    def _failed(self, consumer: Consumer, failing: _Failing, error: BaseException) -> bool:
        """Count a failure of a consumer's next event; at `max_attempts`, dead-letter it.
        True when the consumer went past the event."""
        position = self.outbox.cursor(consumer.name)
        pending = self.outbox.since(position, 1)
        if not pending:
            return False
        event = pending[0]
        if failing.event_id != event["id"]:
            failing.event_id, failing.attempts = event["id"], 0
        failing.attempts += 1
        if failing.attempts < self.max_attempts:
            return False
        reason = f"{type(error).__name__}: {error}"
        if self.outbox.dead_letter(consumer.name, position, event, failing.attempts, reason,
                                  time.time()):
            log.error("event consumer gave up on an event; it is a dead letter now",
                      extra={"consumer": consumer.name, "event": event["id"],
                             "type": event["type"], "attempts": failing.attempts,
                             "reason": reason[:500]})
        failing.event_id, failing.attempts = 0, 0
        return True

    async def _loop(self, consumer: Consumer) -> None:
        await asyncio.sleep(self.start_delay)
        failures = alone_left = 0
        failing = _Failing()
        while True:
            # After a failed batch a transactional consumer gets one event at a time (for up to
            # a batch's worth), so a failure count is the failing event's own.
            alone = consumer.transactional and (failures > 0 or alone_left > 0)
            try:
                if not consumer.transactional and not await asyncio.to_thread(
                        self.holds, consumer):
                    await asyncio.sleep(min(self.lease_seconds / 3, 5.0))
                    continue
                took = await asyncio.to_thread(deliver, self.outbox, consumer,
                                               1 if alone else BATCH)
            except Exception as exc:
                failures += 1
                if consumer.transactional and not alone:
                    alone_left = BATCH
                    continue  # at once, event by event
                try:
                    if consumer.transactional and await asyncio.to_thread(
                            self._failed, consumer, failing, exc):
                        failures = 0
                        continue
                except Exception:
                    log.exception("could not count an event consumer's failure",
                                  extra={"consumer": consumer.name})
                delay = min(self.poll_interval * 2 ** min(failures, 16), self.backoff_max)
                log.exception("event consumer failed; retrying",
                              extra={"consumer": consumer.name, "failures": failures,
                                     "retry_in": round(delay, 2)})
                await asyncio.sleep(delay)
                continue
            failures = 0
            failing = _Failing()
            alone_left = max(alone_left - 1, 0) if took else 0
            if took == 0:
                await asyncio.sleep(self.poll_interval)
            elif took < BATCH and not alone:
                # Under a stream of pushes a round would take one or two events and cost a
                # write (a cursor move, a commit) each: let a few arrive first.
                await asyncio.sleep(self.poll_interval / 5)

    def start(self) -> None:
        """Start the delivery loops (call inside the running event loop)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._loop(c)) for c in self.consumers]

    async def stop(self) -> None:
        """Stop the loops, then deliver what is left once (a graceful stop loses nothing), and
        give the leases up."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []
        for consumer in self.consumers:
            if self.start_delay > 0:
                break  # held back on purpose (tests): a restart delivers
            try:
                if await asyncio.to_thread(self.holds, consumer):
                    await asyncio.to_thread(catch_up, self.outbox, consumer, 20)
            except Exception:
                log.exception("event consumer failed at shutdown; the next start delivers",
                              extra={"consumer": consumer.name})
        for name in list(self._held):
            try:
                await asyncio.to_thread(self.outbox.release_lease, name, self.holder)
            except Exception:
                log.exception("could not release an event consumer's lease",
                              extra={"consumer": name})
        self._held = {}
