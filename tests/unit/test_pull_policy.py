"""Namespace pull policies at the service level: each rule's denial, what it lets through, the
PolicyChanged event of a change, and that a change in this process applies at once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from moorage.auth.identity import CLI
from moorage.bootstrap import Registry
from moorage.oci.errors import Denied, RegistryError

from .content import events_after, push_image


def _report(registry: Registry, repo: str, digest: str, **found: Any) -> None:
    report = {"status": "done", "reason": None, "error": None, "scanned_at": time.time(),
              "matched_at": None, "vulndb_version": None, "os": None, "packages": [],
              "vulnerabilities": [], "secrets": [], "model_findings": [], **found}
    with registry.database.write() as uow:
        uow.scans.save(repo, digest, report, time.time())


def _denial(registry: Registry, repo: str, ref: str) -> Denied:
    with pytest.raises(Denied) as denied:
        registry.manifests.get(repo, ref, with_content=False)
    return denied.value


def test_secrets_and_unsafe_models_are_denied_each_with_its_rule(registry: Registry) -> None:
    digest, _ = push_image(registry, "team/app", "v1")
    _report(registry, "team/app", digest,
            secrets=[{"rule": "aws-access-key", "path": "/etc/creds"}],
            model_findings=[{"kind": "dangerous-import", "path": "model.pkl",
                             "detail": "imports os.system"}])
    registry.pull_policies.set(CLI, "team", {"deny_secrets": True})
    denied = _denial(registry, "team/app", "v1")
    assert denied.detail["rule"] == "deny-secrets"
    assert "contains a secret (aws-access-key in /etc/creds)" in denied.message

    registry.pull_policies.set(CLI, "team", {"deny_unsafe_models": True})
    denied = _denial(registry, "team/app", "v1")
    assert denied.detail["rule"] == "deny-unsafe-models"
    assert "dangerous-import in model.pkl" in denied.message


def test_a_harmless_model_finding_and_a_lower_severity_are_served(registry: Registry) -> None:
    digest, _ = push_image(registry, "team/app", "v1")
    _report(registry, "team/app", digest,
            vulnerabilities=[{"id": "CVE-1", "aliases": [], "severity": "medium"}],
            model_findings=[{"kind": "unknown-import", "path": "m.pkl", "detail": "x.y"}])
    registry.pull_policies.set(CLI, "team", {"deny_unsafe_models": True,
                                             "deny_severity": "high"})
    assert registry.manifests.get("team/app", "v1", with_content=False).digest == digest


def test_a_change_applies_at_once_in_this_process_and_is_an_event(registry: Registry) -> None:
    push_image(registry, "team/app", "v1")
    registry.pull_policies.set(CLI, "team", {"deny_unscanned": True})
    assert "it has no scan report" in _denial(registry, "team/app", "v1").message
    last = registry.outbox.last_id()
    saved = registry.pull_policies.set(CLI, "team", {})
    assert saved["version"] == 2
    registry.manifests.get("team/app", "v1", with_content=False)
    # The earlier denial's PullDenied event is written from a thread: it may land after `last`.
    [event] = [e for e in events_after(registry, last) if e["type"] == "PolicyChanged"]
    assert event["payload"]["action"] == "pull_policy.set"


def test_a_bad_policy_is_refused_and_nothing_is_stored(registry: Registry) -> None:
    for bad in ({"deny_severity": "urgent"},
                {"exceptions": [{"id": "CVE-1", "until": "soon", "reason": "r"}]},
                {"exceptions": [{"id": "CVE-1", "until": "2999-01-01", "reason": ""}]}):
        with pytest.raises(RegistryError):
            registry.pull_policies.set(CLI, "team", bad)
    assert registry.pull_policies.show(CLI, "team")["version"] == 0


def test_a_denial_is_a_pull_denied_event_naming_the_rule(registry: Registry) -> None:
    digest, _ = push_image(registry, "team/app", "v1")
    registry.pull_policies.set(CLI, "team", {"deny_unscanned": True})
    last = registry.outbox.last_id()
    _denial(registry, "team/app", "v1")
    deadline = time.monotonic() + 30
    while not (found := [e for e in events_after(registry, last) if e["type"] == "PullDenied"]):
        assert time.monotonic() < deadline, "no PullDenied event"
        time.sleep(0.05)
    [event] = found
    assert (event["digest"], event["payload"]["rule"], event["payload"]["dry_run"]) == (
        digest, "deny-unscanned", False)
