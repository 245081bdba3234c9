"""Consumer leases and dead letters of the outbox dispatcher, on a real database (SQLite and
PostgreSQL): one dispatcher of several runs a leased consumer at a time, and a transactional
consumer that keeps failing on one event records it as a dead letter and goes on."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time

from moorage.events.dispatcher import Dispatcher
from moorage.events.outbox import Outbox
from moorage.events.types import BlobPushed
from moorage.metadata.uow import Database


def _append(store: Outbox, *repos: str) -> list[int]:
    first = store.last_id()
    store.emit(*(BlobPushed(repository=r, size=1) for r in repos))
    return [e["id"] for e in store.since(first, 1000)]


class Poisoned:
    """A transactional consumer that fails on every event of the repository `team/poison`."""

    transactional = True

    def __init__(self) -> None:
        self.name = "test-poisoned"
        self.seen: list[int] = []
        self.poison_calls = 0

    def handle(self, events, uow) -> None:  # type: ignore[no-untyped-def]
        if any(e["repository"] == "team/poison" for e in events):
            if len(events) == 1:
                self.poison_calls += 1
            raise RuntimeError("cannot digest this one")
        self.seen.extend(e["id"] for e in events)


class Recorder:
    """A plain (leased) consumer that remembers what it was handed."""

    transactional = False

    def __init__(self) -> None:
        self.name = "test-leased"
        self.seen: list[int] = []

    def handle(self, events, uow) -> None:  # type: ignore[no-untyped-def]
        self.seen.extend(e["id"] for e in events)


async def _until(condition, timeout: float, message: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        await asyncio.sleep(0.02)


def test_a_poison_event_becomes_a_dead_letter_and_the_consumer_goes_on(engine, tmp_path, caplog):
    store = Outbox(Database(engine))
    before = _append(store, "team/a", "team/b")
    (poison,) = _append(store, "team/poison")
    after = _append(store, "team/c", "team/d")
    consumer = Poisoned()

    async def run() -> None:
        dispatcher = Dispatcher(store, [consumer], poll_interval=0.01, backoff_max=0.05,
                                max_attempts=3)
        dispatcher.start()
        await _until(lambda: store.cursor(consumer.name) >= after[-1], 60,
                     f"the consumer is stuck at {store.cursor(consumer.name)}")
        await dispatcher.stop()

    with caplog.at_level(logging.ERROR, logger="moorage.events"):
        asyncio.run(run())
    assert consumer.seen == before + after  # every other event, once, in order
    assert consumer.poison_calls == 3
    (letter,) = store.dead_letters(10)
    assert (letter["consumer"], letter["event_id"], letter["type"], letter["repository"],
            letter["attempts"]) == (consumer.name, poison, "BlobPushed", "team/poison", 3)
    assert letter["error"] == "RuntimeError: cannot digest this one"
    gave_up = [r for r in caplog.records if "dead letter" in r.getMessage()]
    assert len(gave_up) == 1
    if engine.dialect.name == "sqlite":
        out = subprocess.run(
            [sys.executable, "-m", "moorage", "events", "failed", "--json", "--data-dir",
             str(tmp_path)], capture_output=True, text=True, timeout=120, check=False,
            env=dict(os.environ))
        assert out.returncode == 0, out.stderr
        (row,) = json.loads(out.stdout.strip().splitlines()[-1])["failed"]
        assert (row["event_id"], row["consumer"], row["attempts"]) == (poison, consumer.name, 3)


def test_a_lease_is_held_by_one_holder_until_it_runs_out(engine):
    store = Outbox(Database(engine))
    now = time.time()
    assert store.take_lease("test-x", "node-a", 5.0, now)
    assert store.take_lease("test-x", "node-a", 5.0, now + 1)  # renewal
    assert not store.take_lease("test-x", "node-b", 5.0, now + 2)
    assert store.take_lease("test-x", "node-b", 5.0, now + 7)  # a's lease ran out
    assert not store.take_lease("test-x", "node-a", 5.0, now + 8)
    store.release_lease("test-x", "node-b")
    assert store.take_lease("test-x", "node-a", 5.0, now + 9)


LEASE = 3.0


def test_one_dispatcher_of_two_feeds_a_leased_consumer_until_it_stops(engine):
    store = Outbox(Database(engine))
    first = _append(store, *[f"team/r{i}" for i in range(20)])
    a, b = Recorder(), Recorder()

    async def run() -> list[int]:
        # A lease long enough that a loaded machine still renews it in time (every lease / 3).
        node_a = Dispatcher(store, [a], poll_interval=0.01, lease_seconds=LEASE, holder="node-a")
        node_b = Dispatcher(store, [b], poll_interval=0.01, lease_seconds=LEASE, holder="node-b")
        node_a.start()
        await _until(lambda: bool(a.seen), 60, "node a never took the lease")
        node_b.start()
        await _until(lambda: store.cursor(a.name) >= first[-1], 60, "not delivered")
        more = _append(store, "team/late-1")
        await _until(lambda: store.cursor(a.name) >= more[-1], 60, "not delivered")
        await asyncio.sleep(LEASE * 1.5)  # longer than the lease: a renews, b never gets it
        assert b.seen == []
        await node_a.stop()  # gives the lease up
        later = _append(store, "team/late-2")
        await _until(lambda: b.seen == later, 60, f"node b did not take over: {b.seen}")
        await node_b.stop()
        return more

    more = asyncio.run(run())
    assert a.seen == first + more
