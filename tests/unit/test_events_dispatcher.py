"""The outbox and its dispatcher on a real database (SQLite and PostgreSQL), in this process: a
failing consumer is retried and still sees every event once, in order; the audit consumer's rows
are idempotent by event id; a cursor advance that lost a race writes nothing; appends become
visible in id order."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from sqlalchemy import func, select

from moorage.events.audit import AuditConsumer, AuditLog
from moorage.events.dispatcher import Dispatcher, catch_up, deliver
from moorage.events.outbox import Outbox
from moorage.events.types import Actor, BlobPushed, ManifestPushed, TagMoved, records
from moorage.metadata.queries.outbox import append
from moorage.metadata.schema import audit_events
from moorage.metadata.uow import Database

DEV = Actor("dev", "user", "10.0.0.7")
REPOS = ["team/a", "team/b", "team/c"]


def _push_events(store: Outbox, rounds: int) -> list[int]:
    """Interleaved pushes into three repositories; returns the new event ids in order."""
    first = store.last_id()
    for i in range(rounds):
        for repo in REPOS:
            digest = f"sha256:{i:064x}"
            store.emit(
                BlobPushed(actor=DEV, repository=repo, digest=digest, size=i),
                ManifestPushed(actor=DEV, repository=repo, digest=digest, tag=f"v{i}",
                               reference=f"v{i}", media_type="m", size=1),
                TagMoved(actor=DEV, repository=repo, digest=digest, tag=f"v{i}"),
            )
    return [e["id"] for e in store.since(first, 100_000)]


class Flaky:
    """A plain consumer that fails its first `fail_first` calls and once more on one event."""

    transactional = False

    def __init__(self, name: str, fail_first: int, fail_on: int) -> None:
        self.name = name
        self.fail_first, self.fail_on = fail_first, fail_on
        self.calls = 0
        self.seen: list[tuple[int, str]] = []

    def handle(self, events, uow) -> None:  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls <= self.fail_first:
            raise RuntimeError("downstream is down")
        (event,) = events
        if event["id"] == self.fail_on:
            self.fail_on = -1
            raise RuntimeError("this one fails once")
        self.seen.append((event["id"], event["repository"]))


def test_failing_consumer_is_retried_and_sees_each_event_once_in_order(engine):
    store = Outbox(Database(engine))
    ids = _push_events(store, 5)
    flaky = Flaky("test-flaky", fail_first=3, fail_on=ids[len(ids) // 2])
    healthy = Flaky("test-healthy", fail_first=0, fail_on=-1)

    async def run() -> None:
        dispatcher = Dispatcher(store, [flaky, healthy], poll_interval=0.01, backoff_max=0.05)
        dispatcher.start()
        deadline = time.monotonic() + 60
        while store.cursor(flaky.name) < ids[-1] or store.cursor(healthy.name) < ids[-1]:
            assert time.monotonic() < deadline, (store.cursors(), flaky.calls)
            await asyncio.sleep(0.02)
        await dispatcher.stop()

    asyncio.run(run())
    assert flaky.calls == len(ids) + 4  # 3 failures up front, one mid-way, then each once
    assert [i for i, _ in flaky.seen] == ids  # each once, in id order
    assert healthy.seen == flaky.seen  # the failures held back only the flaky consumer
    for repo in REPOS:
        mine = [i for i, r in flaky.seen if r == repo]
        assert mine == sorted(mine) and len(mine) == len(set(mine)) == 15, (repo, mine)


def test_audit_rows_are_idempotent_by_event_id(engine):
    store = Outbox(Database(engine))
    ids = _push_events(store, 2)
    consumer = AuditConsumer()
    catch_up(store, consumer)
    catch_up(store, consumer)  # nothing new: nothing written
    batch = store.since(0, 1000)
    # A second process that delivered the same batch again (its cursor read before ours moved)
    with store.database.write() as uow:
        consumer.handle(batch, uow)
    with engine.connect() as conn:
        rows = conn.execute(select(audit_events.c.event_id, audit_events.c.action)).all()
    # TagMoved makes no audit row: a blob.push and a manifest.push per pushed image
    assert sorted(r.event_id for r in rows) == [i for i in ids if i % 3 != 0], rows
    assert {r.action for r in rows} == {"blob.push", "manifest.push"}
    assert store.cursor("audit") == ids[-1]


def test_a_cursor_advance_that_lost_the_race_writes_nothing(engine):
    store = Outbox(Database(engine))
    _push_events(store, 1)
    assert store.cursor("audit") == 0
    assert store.advance("audit", 0, 2)
    wrote = []
    assert not store.advance("audit", 0, 9, lambda uow: wrote.append(
        uow.access.append_audit([{"event_id": 99, "time": 1.0, "action": "x",
                                       "outcome": "success", "detail": None}])))
    assert store.cursor("audit") == 2 and wrote == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_events)).scalar_one() == 0


def test_a_failing_transactional_consumer_keeps_its_cursor_and_writes_nothing(engine):
    store = Outbox(Database(engine))
    _push_events(store, 1)

    class Breaks(AuditConsumer):
        def handle(self, events, uow):  # type: ignore[no-untyped-def]
            super().handle(events, uow)
            raise RuntimeError("fails after writing")

    with pytest.raises(RuntimeError):
        deliver(store, Breaks())
    assert store.cursor("audit") == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_events)).scalar_one() == 0
    audit = AuditLog(store.database)
    assert [e["action"] for e in audit.query(repository="team/a")] == [
        "manifest.push", "blob.push"]
    e = audit.query(repository="team/a")[0]
    assert (e["actor"], e["actor_kind"], e["remote"], e["reference"]) == (
        "dev", "user", "10.0.0.7", "v0")


def test_appends_become_visible_in_id_order(engine):
    """A later append waits for an earlier one's commit, so a dispatcher that has read an id
    never misses a smaller one committed after it (PostgreSQL; SQLite has one writer)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite commits one writer at a time")
    store = Outbox(Database(engine))
    first = engine.connect()
    tx = first.begin()
    append(first, records(BlobPushed(repository="team/first", size=1)))
    done = threading.Event()

    def later() -> None:
        store.emit(BlobPushed(repository="team/later", size=2))
        done.set()

    thread = threading.Thread(target=later)
    thread.start()
    try:
        assert not done.wait(1.0), "the later append committed before the earlier one"
        assert store.since(0, 10) == []
    finally:
        tx.commit()
        first.close()
        thread.join(30)
    assert done.is_set()
    assert [e["repository"] for e in store.since(0, 10)] == ["team/first", "team/later"]


class Recording:
    """A plain consumer that records what it is handed and can fail on one event id."""

    transactional = False

    def __init__(self, name: str, fail_on: int = -1) -> None:
        self.name, self.fail_on = name, fail_on
        self.seen: list[int] = []

    def handle(self, events, uow) -> None:  # type: ignore[no-untyped-def]
        (event,) = events
        if event["id"] == self.fail_on:
            raise RuntimeError("fails here")
        self.seen.append(event["id"])


class CountingOutbox(Outbox):
    """The real outbox, counting cursor writes."""

    advances = 0

    def advance(self, *args, **kwargs) -> bool:  # type: ignore[no-untyped-def]
        self.advances += 1
        return super().advance(*args, **kwargs)


def test_a_plain_consumer_moves_its_cursor_once_per_batch(engine):
    store = CountingOutbox(Database(engine))
    ids = _push_events(store, 20)  # 180 events, one batch
    consumer = Recording("batched")
    store.cursor(consumer.name)
    assert deliver(store, consumer) == len(ids)
    assert consumer.seen == ids
    assert store.advances == 1
    assert store.cursor(consumer.name) == ids[-1]


def test_a_plain_consumer_failing_mid_batch_keeps_what_it_handled(engine):
    store = Outbox(Database(engine))
    ids = _push_events(store, 5)
    consumer = Recording("fails-mid-batch", fail_on=ids[7])
    base = store.cursor(consumer.name)
    with pytest.raises(RuntimeError):
        deliver(store, consumer)
    assert consumer.seen == ids[:7]
    assert store.cursor(consumer.name) == ids[6]
    consumer.fail_on = -1
    deliver(store, consumer)
    assert consumer.seen == ids  # the failed one and the rest, once each
    assert base < ids[0]
