"""Replication rules as services on a real embedded registry: server admins only, globs, the
checks on a rule, at most one active run per rule, and an upstream in use kept."""

from __future__ import annotations

import pytest

from moorage.auth.identity import CLI, Principal
from moorage.bootstrap import Registry
from moorage.jobs.queue import worker_name
from moorage.oci.errors import AccessDenied, RegistryError
from moorage.registry.upstreams import UpstreamConflict
from moorage.replication import rules
from moorage.replication.service import KIND, RuleConflict, RuleNotFound

ALICE = Principal("user", "alice")


@pytest.fixture
def target(registry: Registry) -> str:
    registry.upstreams.add(CLI, "dr", "http://127.0.0.1:9")
    return "dr"


def test_globs_keep_one_star_within_a_path_segment() -> None:
    assert rules.matches("ml/**", "ml/a/b") and rules.matches("ml/*", "ml/a")
    assert not rules.matches("ml/*", "ml/a/b")
    assert not rules.matches("ml/**", "mlx/a")
    assert rules.matches("v*,latest", "latest") and not rules.matches("v*", "dev1")
    assert rules.matches(None, "anything")


def test_only_a_server_admin_manages_rules(registry: Registry, target: str) -> None:
    with pytest.raises(AccessDenied):
        registry.replication.add(ALICE, "r", "push", target, "ml/**")
    registry.replication.add(CLI, "r", "push", target, "ml/**")
    for call in (lambda: registry.replication.list_rules(ALICE),
                 lambda: registry.replication.run(ALICE, "r"),
                 lambda: registry.replication.history(ALICE, "r"),
                 lambda: registry.replication.remove(ALICE, "r")):
        with pytest.raises(AccessDenied):
            call()


def test_a_rule_is_checked_when_added(registry: Registry, target: str) -> None:
    shown = registry.replication.add(CLI, "r", "push", target, "ml/**, cv/x", "v*", True)
    assert (shown["repos"], shown["tags"], shown["on_push"]) == ("ml/**,cv/x", "v*", True)
    with pytest.raises(RuleConflict):
        registry.replication.add(CLI, "r", "push", target, "ml/**")
    with pytest.raises(RegistryError, match="no upstream"):
        registry.replication.add(CLI, "s", "push", "nowhere", "ml/**")
    with pytest.raises(RegistryError, match="names, not globs"):
        registry.replication.add(CLI, "s", "pull", target, "ml/**")
    with pytest.raises(RegistryError, match="--push-to"):
        registry.replication.add(CLI, "s", "pull", target, "ml/x", on_push=True)
    with pytest.raises(RegistryError, match="invalid replication rule name"):
        registry.replication.add(CLI, "Bad Name", "push", target, "ml/**")
    with pytest.raises(RuleNotFound):
        registry.replication.run(CLI, "nope")


def test_at_most_one_active_run_per_rule(registry: Registry, target: str) -> None:
    registry.replication.add(CLI, "r", "push", target, "ml/**")
    registry.replication.add(CLI, "other", "push", target, "ml/**")
    first, created = registry.replication.run(CLI, "r")
    assert created and first.kind == KIND
    again, created = registry.replication.run(CLI, "r")
    assert (again.id, created) == (first.id, False)
    claimed, _ = registry.jobs.claim(worker_name(), {KIND})
    assert claimed is not None and claimed.id == first.id
    running, created = registry.replication.run(CLI, "r")
    assert (running.id, created, running.state) == (first.id, False, "running")
    assert registry.replication.status(CLI, "r")["active_job"] == first.id
    assert registry.replication.run(CLI, "other")[1]  # another rule runs alongside
    registry.jobs.complete(claimed)
    after, created = registry.replication.run(CLI, "r")
    assert created and after.id != first.id


def test_an_upstream_a_rule_uses_is_kept(registry: Registry, target: str) -> None:
    registry.replication.add(CLI, "r", "push", target, "ml/**")
    with pytest.raises(UpstreamConflict, match="replication rule 'r'"):
        registry.upstreams.remove(CLI, target)
    registry.replication.remove(CLI, "r")
    registry.upstreams.remove(CLI, target)
    assert registry.replication.list_rules(CLI) == []


def test_filters_schedule_and_bandwidth_are_checked(registry: Registry, target: str) -> None:
    shown = registry.replication.add(
        CLI, "f", "push", target, "ml/**", platforms="linux/amd64, linux/arm64/v8",
        artifact_types="application/vnd.oci.image.config.v1+json", schedule="0 3 * * *",
        bandwidth="200MB/s")
    assert shown["platforms"] == "linux/amd64,linux/arm64/v8"
    assert (shown["schedule"], shown["bandwidth"]) == ("0 3 * * *", 200_000_000)
    for bad, error in (({"platforms": "amd64"}, "os/architecture"),
                       ({"schedule": "0 3 * *"}, "five fields"),
                       ({"bandwidth": "fast"}, "not a rate")):
        with pytest.raises(RegistryError, match=error):
            registry.replication.add(CLI, "g", "push", target, "ml/**", **bad)


def test_a_schedule_queues_one_run_when_due(registry: Registry, target: str) -> None:
    registry.replication.add(CLI, "nightly", "push", target, "ml/**", schedule="0 3 * * *")
    registry.replication.add(CLI, "manual", "push", target, "ml/**")
    created = registry.replication.status(CLI, "nightly")["rule"]["created_at"]
    day = 86400.0
    start = created - created % day  # midnight UTC of the creation day
    due = start + 3 * 3600 if start + 3 * 3600 > created else start + day + 3 * 3600
    assert registry.replication.tick(due - 60) == []
    assert registry.replication.tick(due + 1) == ["nightly"]
    job = registry.replication.status(CLI, "nightly")["active_job"]
    assert job is not None
    assert registry.replication.tick(due + 2) == []  # this time's run is queued already
    # the next day's time comes while that run is still queued: no second run of the rule
    assert registry.replication.tick(due + day + 1) == ["nightly"]
    assert registry.replication.status(CLI, "nightly")["active_job"] == job
    assert registry.replication.status(CLI, "manual")["active_job"] is None
