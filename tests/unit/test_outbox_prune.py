"""The `outbox.prune` job on a real embedded registry: events older than the retention that
every consumer's cursor has passed are deleted; unhandled or recent ones stay."""

from __future__ import annotations

import asyncio
import time

from moorage.bootstrap import Registry
from moorage.events.types import BlobPushed

DAY = 86400.0


def _prune(registry: Registry, retention: float) -> dict:
    """Queue one `outbox.prune` job and run it with the registry's own job runner."""
    job, _ = registry.jobs.enqueue("outbox.prune", {"retention": retention})

    async def run() -> None:
        runner = registry.job_runner()
        runner.start()
        deadline = time.monotonic() + 60
        while registry.jobs.get(job.id).state not in ("done", "failed"):
            assert time.monotonic() < deadline, "the prune job did not run"
            await asyncio.sleep(0.05)
        await runner.stop(5)

    asyncio.run(run())
    done = registry.jobs.get(job.id)
    assert done.state == "done", done.last_error
    return done.to_dict()


def _ids(registry: Registry) -> list[int]:
    return [e["id"] for e in registry.outbox.since(0)]


def test_prune_deletes_only_old_events_every_consumer_has_handled(registry: Registry):
    store, old = registry.outbox, time.time() - 10 * DAY
    registry.outbox.emit(BlobPushed(repository="team/a", size=1, time=old),
                         BlobPushed(repository="team/a", size=2, time=old),
                         BlobPushed(repository="team/a", size=3))  # recent
    registry.audit.catch_up()
    first, second, recent = _ids(registry)
    assert store.advance("test-behind", store.cursor("test-behind"), first)
    registry.outbox.emit(BlobPushed(repository="team/b", size=4, time=old),
                         BlobPushed(repository="team/b", size=5, time=old))  # no one saw these
    unseen = _ids(registry)[3:]
    assert store.cursor("audit") == recent
    _prune(registry, 7 * DAY)
    # Only the first is old and passed by both cursors.
    assert _ids(registry) == [second, recent, *unseen]
    registry.audit.catch_up()
    assert store.advance("test-behind", first, unseen[-1])
    _prune(registry, 7 * DAY)
    assert _ids(registry) == [recent]
    _prune(registry, 0)  # a zero retention: everything handled goes
    assert _ids(registry) == []


def test_prune_deletes_dead_letters_older_than_the_retention(registry: Registry):
    registry.outbox.emit(BlobPushed(repository="team/c", size=1),
                         BlobPushed(repository="team/c", size=2))
    first, second = _ids(registry)[-2:]
    store = registry.outbox
    cursor = store.cursor("test-dead")
    assert store.dead_letter("test-dead", cursor, {"id": first, "type": "BlobPushed"}, 10,
                             "boom", time.time() - 10 * DAY)
    assert store.dead_letter("test-dead", first, {"id": second, "type": "BlobPushed"}, 10,
                             "boom", time.time())
    assert len(store.dead_letters()) == 2
    _prune(registry, 7 * DAY)
    assert [d["event_id"] for d in store.dead_letters()] == [second]
