"""The `webhooks` consumer and the `webhook.deliver` job on a real embedded registry, sending to
a real receiver on 127.0.0.1: one delivery per matching webhook and event, order per repository
kept when the first delivery fails, give-up after the max age and redelivery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.webhooks import Receiver

from moorage.auth.identity import CLI
from moorage.bootstrap import Registry
from moorage.events.dispatcher import catch_up
from moorage.events.webhooks import CONSUMER, WebhookConsumer

from .conftest import make_registry
from .content import push_image


def _consumer(registry: Registry) -> WebhookConsumer:
    (consumer,) = [c for c in registry.dispatcher.consumers if c.name == CONSUMER]
    assert isinstance(consumer, WebhookConsumer)
    return consumer


def _deliveries(registry: Registry, name: str) -> list[dict[str, Any]]:
    return sorted(registry.webhooks.deliveries(CLI, name), key=lambda d: d["id"])


def _run_jobs_until(registry: Registry, done: Callable[[], bool], timeout: float = 60.0) -> None:
    """Run the registry's job runner until `done()`."""
    async def run() -> None:
        runner = registry.job_runner(concurrency=2)
        runner.start()
        try:
            deadline = time.monotonic() + timeout
            while not await asyncio.to_thread(done):
                assert time.monotonic() < deadline, "the deliveries did not finish in time"
                await asyncio.sleep(0.05)
        finally:
            await runner.stop(5)

    asyncio.run(run())


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def fast(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A registry whose webhook retries come within a fraction of a second."""
    built = make_registry(tmp_path / "fast", webhook_backoff_max=0.3, job_poll_interval=0.05)
    try:
        yield built
    finally:
        built.close()


def test_one_delivery_per_matching_webhook_and_event(registry: Registry) -> None:
    hooks = registry.webhooks
    hooks.add(CLI, "team", "http://127.0.0.1:9/a", "push", name="team-push")
    hooks.add(CLI, "*", "http://127.0.0.1:9/b", "push,tag", name="all-push-tag")
    hooks.add(CLI, "other", "http://127.0.0.1:9/c", "push,tag,pull,delete", name="other-ns")
    hooks.add(CLI, "team", "http://127.0.0.1:9/d", "pull,delete", name="team-pull")
    digest, _ = push_image(registry, "team/app", "v1")  # blob pushes, a manifest push, a tag move
    consumer = _consumer(registry)
    catch_up(registry.outbox, consumer)
    # Handling the same events again (a redelivery) makes no second row.
    events = registry.outbox.since(0, 1000)
    with registry.database.write() as uow:
        consumer.handle(events, uow)
    catch_up(registry.outbox, consumer)

    (pushed,) = _deliveries(registry, "team-push")
    assert (pushed["type"], pushed["repository"], pushed["status"]) == (
        "org.moorage.manifest.pushed", "team/app", "pending")
    both = _deliveries(registry, "all-push-tag")
    assert [d["type"] for d in both] == ["org.moorage.manifest.pushed", "org.moorage.tag.moved"]
    assert both[0]["event_id"] == pushed["event_id"]
    assert _deliveries(registry, "other-ns") == []
    assert _deliveries(registry, "team-pull") == []
    # each webhook with new deliveries has a sender queued
    kinds = [(j.kind, j.payload) for j in registry.jobs.list(kind="webhook.deliver")]
    wanted = {_id(registry, "team-push"), _id(registry, "all-push-tag")}
    assert {p["webhook"] for _, p in kinds} == wanted
    assert digest  # the pushed manifest is what the deliveries are about


def _id(registry: Registry, name: str) -> int:
    (hook,) = [h for h in registry.webhooks.list_webhooks(CLI) if h["name"] == name]
    return int(hook["id"])


def test_order_per_repository_is_kept_when_the_first_delivery_fails(
        fast: Registry, receiver: Receiver) -> None:
    fast.webhooks.add(CLI, "team", receiver.url, "push", name="ordered")
    for tag in ("v1", "v2", "v3"):
        push_image(fast, "team/a", tag)
    push_image(fast, "team/b", "v1")
    catch_up(fast.outbox, _consumer(fast))
    failures = {"left": 2}

    def fail_first_of_a(event: dict[str, Any]) -> bool:
        if event["data"]["repository"] == "team/a" and failures["left"] > 0:
            failures["left"] -= 1
            return True
        return False

    receiver.fail_status, receiver.fail_when = 503, fail_first_of_a
    _run_jobs_until(fast, lambda: all(d["status"] == "delivered"
                                      for d in _deliveries(fast, "ordered")))
    got = receiver.delivered()
    a = [int(r.event["id"]) for r in got if r.event["data"]["repository"] == "team/a"]
    assert len(a) == 3 and a == sorted(a)  # in event order, each once
    assert [r.status for r in receiver.requests].count(503) == 2 and failures["left"] == 0
    b = [i for i, r in enumerate(got) if r.event["data"]["repository"] == "team/b"]
    assert b == [0], "team/b waited for team/a's failing delivery"
    first_a = _deliveries(fast, "ordered")[0]
    assert (first_a["repository"], first_a["attempts"], first_a["last_status"]) == (
        "team/a", 3, 204)


def test_a_delivery_past_its_max_age_fails_and_redeliver_sends_it_again(
        tmp_path: Path, receiver: Receiver) -> None:
    registry = make_registry(tmp_path / "aged", webhook_max_age=0.0, job_poll_interval=0.05)
    try:
        registry.webhooks.add(CLI, "team", receiver.url, "push", name="aged")
        push_image(registry, "team/app", "v1")
        catch_up(registry.outbox, _consumer(registry))
        receiver.fail_status = 503
        _run_jobs_until(registry, lambda: _deliveries(registry, "aged")[0]["status"] == "failed")
        (failed,) = registry.webhooks.deliveries(CLI, "aged", failed_only=True)
        assert (failed["attempts"], failed["last_status"]) == (1, 503)
        assert failed["last_error"].startswith("HTTP 503")

        receiver.fail_status = None
        again = registry.webhooks.redeliver(CLI, failed["id"])
        assert again["status"] == "pending"
        _run_jobs_until(registry,
                        lambda: _deliveries(registry, "aged")[0]["status"] == "delivered")
        ids = [r.headers["webhook-id"] for r in receiver.requests]
        assert ids == [str(failed["event_id"])] * 2  # the same message id on the retry
        assert registry.webhooks.deliveries(CLI, "aged", failed_only=True) == []
    finally:
        registry.close()


def test_heads_claims_and_leases_on_both_engines(engine: Any) -> None:
    from moorage.metadata.uow import Database

    database = Database(engine)
    now = time.time()
    with database.write() as uow:
        hook = uow.webhooks.add({"name": "h", "namespace": "team", "url": "http://x/",
                                 "events": "push", "secret": None, "created_at": now,
                                 "created_by": "t"})
        rows = [{"webhook_id": hook, "event_id": i, "repository": repo, "type": "t",
                 "body": "{}", "status": "pending", "attempts": 0, "next_attempt_at": now,
                 "queued_at": now, "created_at": now}
                for i, repo in ((1, "team/a"), (2, "team/a"), (3, "team/b"), (4, "team/a"))]
        uow.webhooks.add_deliveries(rows)
        uow.webhooks.add_deliveries(rows[:2])  # again: no second row per (webhook, event)
    with database.write() as uow:
        heads = uow.webhooks.heads(hook)
        assert [h["event_id"] for h in heads] == [1, 3]
        lease = now + 60
        assert uow.webhooks.claim(heads[0], now + 1, lease)
        assert not uow.webhooks.claim(heads[0], now + 1, lease + 1)  # leased already
    with database.write() as uow:
        # while a1 is being sent, a2 waits: the head of team/a is still a1
        assert [h["event_id"] for h in uow.webhooks.heads(hook)] == [1, 3]
        assert not uow.webhooks.finish(heads[0]["id"], lease + 1, {"status": "delivered"})
        assert uow.webhooks.finish(heads[0]["id"], lease, {"status": "delivered",
                                                           "lease_until": None})
        assert [h["event_id"] for h in uow.webhooks.heads(hook)] == [2, 3]
        # a run that died: its lease runs out and another takes the row over
        second = uow.webhooks.heads(hook)[0]
        assert uow.webhooks.claim(second, now + 1, now + 2)
        assert uow.webhooks.claim(second, now + 3, now + 60)
        assert len(uow.webhooks.deliveries(hook, None, 100)) == 4
