"""Rate limits without HTTP: the GCRA arithmetic on a fake clock, the database bucket shared by
several limiters (as by workers) on SQLite and PostgreSQL, and the admin service's targets."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from moorage.auth.identity import CLI, Principal
from moorage.events.types import Actor
from moorage.metadata.uow import Database
from moorage.oci.errors import RegistryError
from moorage.policy.ratelimit import InvalidRate, Limits, Rate, charge, retry_header
from moorage.registry.rate_limiter import Bucket, RateLimiter
from moorage.registry.rate_limits import RateLimitService


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_at_once_then_one_request_per_interval() -> None:
    interval, tat, now = 6.0, None, 100.0  # 10/min, burst 3
    for _ in range(3):
        d = charge(tat, now, interval, 3)
        assert d.allowed
        tat = d.tat
    refused = charge(tat, now, interval, 3)
    assert not refused.allowed and refused.tat == tat
    assert refused.retry_after == pytest.approx(6.0)
    assert charge(tat, now + 5.9, interval, 3).allowed is False
    assert charge(tat, now + 6.0, interval, 3).allowed is True


def test_an_idle_bucket_refills_only_to_its_burst() -> None:
    d = charge(50.0, 10_000.0, 1.0, 2)  # a TAT long past is an empty bucket
    assert d.allowed and d.tat == 10_001.0
    assert charge(d.tat, 10_000.0, 1.0, 2).allowed
    assert not charge(d.tat + 1.0, 10_000.0, 1.0, 2).allowed


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert [retry_header(s) for s in (0.0, 0.2, 1.0, 1.01, 59.5)] == ["1", "1", "1", "2", "60"]


def test_rates_parse_and_bad_ones_are_refused_with_the_accepted_form() -> None:
    assert Rate.parse("600/min") == Rate(600, 60.0)
    assert Rate.parse("5/s").interval == 0.2
    assert str(Rate.parse("10/h")) == "10/h"
    for bad in ("0/min", "ten/min", "5/day", "5", "-1/s", "5/min/s", "1.5/s"):
        with pytest.raises(InvalidRate, match="N/s, N/min or N/h"):
            Rate.parse(bad)
    with pytest.raises(InvalidRate, match="at least one"):
        Limits.parse({"burst": 3})
    with pytest.raises(InvalidRate, match="burst"):
        Limits.parse({"pull": "1/s", "burst": 0})
    assert Limits.parse({"pull": "6/min"}).burst_of("pull") == 6
    assert Limits.parse({"pull": "6/min", "burst": 2}).burst_of("pull") == 2


def _limiter(engine: Any, clock: Clock) -> RateLimiter:
    return RateLimiter(Database(engine), cache_seconds=60.0, clock=clock)


def test_limiters_share_one_bucket_in_the_database(engine: Any) -> None:
    clock = Clock()
    workers = [_limiter(engine, clock), _limiter(engine, clock)]
    bucket = [Bucket("pull|robot:robot$ci", Rate(10, 60.0), 4, "robot robot$ci")]
    actor = Actor("robot$ci", "robot", "10.0.0.1")
    outcomes = [workers[i % 2].take("pull", bucket, actor, "team/app") for i in range(6)]
    assert [o is None for o in outcomes] == [True] * 4 + [False] * 2
    refusal = outcomes[4]
    assert refusal is not None and refusal.retry_after == pytest.approx(6.0)
    assert "pull rate limit of robot robot$ci (10/min, burst 4)" in refusal.message
    clock.now += 6.0
    assert workers[1].take("pull", bucket, actor, "team/app") is None
    assert workers[0].take("pull", bucket, actor, "team/app") is not None


def test_concurrent_charges_never_pass_more_than_the_burst(engine: Any) -> None:
    clock = Clock()
    bucket = [Bucket("push|user:alice", Rate(1, 3600.0), 5, "user alice")]
    passed: list[bool] = []

    def one() -> None:
        limiter = _limiter(engine, clock)
        for _ in range(3):
            passed.append(limiter.take("push", bucket, Actor("alice"), None) is None)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert passed.count(True) == 5 and len(passed) == 18


def test_a_refusal_is_audited_once_per_window(engine: Any) -> None:
    from sqlalchemy import func, select

    from moorage.metadata.schema import events

    clock = Clock()
    limiter = _limiter(engine, clock)
    bucket = [Bucket("login|addr:10.1.1.1", Rate(1, 60.0), 1, "anonymous clients")]
    for _ in range(4):
        limiter.take("login", bucket, Actor(None, None, "10.1.1.1"), None)
    clock.now += 61.0
    for _ in range(3):
        limiter.take("login", bucket, Actor(None, None, "10.1.1.1"), None)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(events)
                         .where(events.c.type == "RateLimited")).scalar()
    assert n == 2  # the first refusal of each window, not one per refused request


def test_buckets_follow_the_targets_that_apply(registry: Any) -> None:
    registry.admin.add_user(CLI, "bob", "a-long-password-1")
    registry.admin.add_namespace(CLI, "team")
    service: RateLimitService = registry.rate_limits
    service.set(CLI, None, {"pull": "30/min", "login": "5/min"})
    service.set(CLI, "team", {"pull": "10/min"})
    service.set(CLI, "bob", {"push": "2/min", "login": "1/min"})
    assert [(r["kind"], r["target"]) for r in service.list(CLI)] == [
        ("anonymous", "*"), ("namespace", "team"), ("user", "bob")]
    limiter: RateLimiter = registry.rate_limiter
    limiter.load()
    anon, bob = Principal("anonymous", "anonymous"), Principal("user", "bob")

    def keys(kind: str, who: Principal, repo: str | None) -> list[str]:
        return [b.key for b in limiter.buckets(kind, who, repo, "10.0.0.9")]

    assert keys("pull", anon, "team/app") == ["pull|addr:10.0.0.9",
                                              "pull|ns:team/app|addr:10.0.0.9"]
    assert keys("pull", bob, "team/app") == ["pull|ns:team/app|user:bob"]
    assert keys("pull", bob, "other/app") == []
    assert keys("push", bob, "other/app") == ["push|user:bob"]
    assert keys("push", anon, "team/app") == []
    assert [b.key for b in limiter.login_buckets("bob", "10.0.0.9")] == ["login|user:bob"]
    assert [b.key for b in limiter.login_buckets("carol", "10.0.0.9")] == ["login|addr:10.0.0.9"]
    assert [b.key for b in limiter.login_buckets(None, "10.0.0.9")] == ["login|addr:10.0.0.9"]


def test_the_service_refuses_unknown_targets_and_bad_rates(registry: Any) -> None:
    service: RateLimitService = registry.rate_limits
    with pytest.raises(RegistryError, match="no user or namespace 'nobody'"):
        service.set(CLI, "nobody", {"pull": "1/s"})
    with pytest.raises(RegistryError, match="no robot robot\\$ghost"):
        service.set(CLI, "robot$ghost", {"pull": "1/s"})
    with pytest.raises(InvalidRate, match="invalid rate '10/fortnight'"):
        service.set(CLI, None, {"pull": "10/fortnight"})
    saved = service.set(CLI, None, {"push": "60/min", "burst": 10})
    assert saved == {"kind": "anonymous", "target": "*", "pull": None, "push": "60/min",
                     "login": None, "burst": 10}
    assert service.list(CLI) == [saved]
    service.remove(CLI, None)
    assert service.list(CLI) == []
    with pytest.raises(RegistryError, match="has no rate limit"):
        service.remove(CLI, None)
