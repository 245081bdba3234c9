"""The unusual-activity watcher's pull spike: one alert when a principal's manifest pulls in the
window reach the threshold, none more during that burst, again for a later burst; principals
(and anonymous clients, by address) are counted apart."""

from __future__ import annotations

import itertools

from moorage.events.activity import ActivityRules, ActivityWatcher

_ids = itertools.count(1)


def _pull(actor: str | None, at: float, address: str = "10.0.0.1") -> dict:
    return {"id": next(_ids), "type": "ManifestPulled", "actor": actor,
            "actor_kind": "user" if actor else "anonymous", "address": address, "time": at,
            "repository": "team/app", "payload": None}


def _alerts(registry) -> list[dict]:
    return [e for e in registry.outbox.since(0, 10_000) if e["type"] == "UnusualActivity"]


def test_a_pull_spike_alerts_once_per_burst(registry) -> None:
    watcher = ActivityWatcher(registry.database, ActivityRules(0, 60.0, False, pull_spike=3))
    watcher.handle([_pull("ana", t) for t in (0, 1, 2, 3, 4)], None)  # 5 pulls, threshold 3
    watcher.handle([_pull("bob", t) for t in (0, 1)], None)  # under it
    alerts = _alerts(registry)
    assert [(a["actor"], a["payload"]["kind"]) for a in alerts] == [("ana", "pull_spike")]
    assert alerts[0]["payload"]["detail"] == {"pulls": 3, "window_seconds": 60.0}

    watcher.handle([_pull("ana", 200)], None)  # the window passed: the burst is over
    watcher.handle([_pull("ana", t) for t in (201, 202)], None)  # a new burst reaches 3
    assert [a["actor"] for a in _alerts(registry)] == ["ana", "ana"]


def test_anonymous_clients_are_counted_by_address(registry) -> None:
    watcher = ActivityWatcher(registry.database, ActivityRules(0, 60.0, False, pull_spike=2))
    watcher.handle([_pull(None, 0, "10.0.0.1"), _pull(None, 1, "10.0.0.2")], None)
    assert _alerts(registry) == []
    watcher.handle([_pull(None, 2, "10.0.0.2")], None)
    (alert,) = _alerts(registry)
    assert alert["address"] == "10.0.0.2" and alert["payload"]["kind"] == "pull_spike"


def test_the_check_is_off_at_zero(registry) -> None:
    watcher = ActivityWatcher(registry.database, ActivityRules(0, 60.0, False, pull_spike=0))
    watcher.handle([_pull("ana", t) for t in range(50)], None)
    assert _alerts(registry) == []
