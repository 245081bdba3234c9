"""Admission policy at pull through a real server: `moorage policy set` turns rules on for a
namespace, manifest GET and HEAD (by tag and by digest) answer 403 DENIED with the rule's
sentence, signatures and SBOMs stay pullable, dry runs are audited, skopeo sees the same."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.oci import get_manifest, make_artifact, make_image, new_tag, push_tree
from support.servers import Server, start_registry

from moorage.cli.common import Target, open_existing

from .signing_fixtures import cosign_signature, cosign_tag, p256
from .test_signatures import _target, cli, trust_key

TIMEOUT = 30.0
CYCLONEDX = "application/vnd.cyclonedx+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # No scans on push: each test writes the scan report it needs.
    reg = start_registry(tmp_path_factory.mktemp("pullpolicy"), MOORAGE_SBOM_ON_PUSH="0",
                         MOORAGE_PULL_POLICY_CACHE_SECONDS="0.2")
    yield reg
    reg.stop()


def _namespace() -> str:
    return f"pp{uuid.uuid4().hex[:10]}"


def _push(reg: Server, namespace: str) -> tuple[str, str, Any]:
    repo, tag, image = f"{namespace}/app", new_tag(), make_image(layers=1)
    push_tree(reg, repo, image, tag=tag)
    return repo, tag, image


def _statuses(reg: Server, repo: str, tag: str, digest: str) -> list[int]:
    """GET and HEAD by tag and by digest."""
    return [get_manifest(reg, repo, ref, method).status_code
            for ref in (tag, digest) for method in ("GET", "HEAD")]


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _write_report(reg: Server, repo: str, digest: str, status: str = "done",
                  vulnerabilities: list[dict[str, Any]] | None = None) -> None:
    args = _target(reg)
    opts = dict(zip(args[::2], args[1::2], strict=True))
    registry = open_existing(Target(Path(opts["--data-dir"]), opts.get("--database"),
                                    opts.get("--storage")).settings())
    report = {"status": status, "reason": None, "error": None, "scanned_at": time.time(),
              "matched_at": None, "vulndb_version": None, "os": None, "packages": [],
              "vulnerabilities": vulnerabilities or [], "secrets": [], "model_findings": []}
    with registry.database.write() as uow:
        uow.scans.save(repo, digest, report, time.time())


def _message(resp: Any) -> str:
    [error] = resp.json()["errors"]
    assert error["code"] == "DENIED"
    return str(error["message"])


def test_unsigned_is_denied_by_tag_and_digest_get_and_head_with_the_sentence(server: Server, tmp_path: Path) -> None:
    ns = _namespace()
    trust_key(server, tmp_path, ns, "release", p256())
    repo, tag, image = _push(server, ns)
    cli(server, "policy", "set", ns, "--require-signature")

    assert _statuses(server, repo, tag, image.digest) == [403, 403, 403, 403]
    assert _message(get_manifest(server, repo, tag)) == (
        f"{repo}@{image.digest} is not signed by a key trusted for namespace {ns}: sign it "
        f"with cosign and a key from `moorage trust list {ns}`, or ask an admin to add yours")


def test_a_trusted_signature_serves_and_an_untrusted_key_does_not(server: Server, tmp_path: Path) -> None:
    ns = _namespace()
    key = p256()
    trust_key(server, tmp_path, ns, "release", key)
    repo, tag, image = _push(server, ns)
    sig = cosign_signature(key, image.digest, f"{server.host}/{repo}")
    push_tree(server, repo, sig, tag=cosign_tag(image.digest))
    other_repo, other_tag, other = _push(server, ns)
    bad = cosign_signature(p256(), other.digest, f"{server.host}/{other_repo}")
    push_tree(server, other_repo, bad, tag=cosign_tag(other.digest))
    cli(server, "policy", "set", ns, "--require-signature")

    assert _statuses(server, repo, tag, image.digest) == [200, 200, 200, 200]
    assert _statuses(server, other_repo, other_tag, other.digest) == [403, 403, 403, 403]


def test_signatures_and_sboms_stay_pullable_under_a_strict_policy(server: Server, tmp_path: Path) -> None:
    ns = _namespace()
    trust_key(server, tmp_path, ns, "release", p256())
    repo, tag, image = _push(server, ns)
    sig = cosign_signature(p256(), image.digest, f"{server.host}/{repo}")
    push_tree(server, repo, sig, tag=cosign_tag(image.digest))
    sbom = make_artifact(CYCLONEDX, subject=image)
    push_tree(server, repo, sbom)
    cli(server, "policy", "set", ns, "--require-signature", "--deny-unscanned",
        "--deny-severity", "low", "--deny-secrets", "--deny-unsafe-models")

    assert _statuses(server, repo, tag, image.digest) == [403, 403, 403, 403]
    assert _statuses(server, repo, cosign_tag(image.digest), sig.digest) == [200, 200, 200, 200]
    assert [get_manifest(server, repo, sbom.digest, m).status_code
            for m in ("GET", "HEAD")] == [200, 200]


def test_a_critical_vulnerability_is_denied_until_an_exception_on_its_alias(server: Server) -> None:
    ns = _namespace()
    repo, tag, image = _push(server, ns)
    _write_report(server, repo, image.digest, vulnerabilities=[{
        "id": "GHSA-pp11-aaaa-bbbb", "aliases": ["CVE-2026-11111"], "package": "openssl",
        "installed": "3.0.1", "severity": "critical"}])
    cli(server, "policy", "set", ns, "--deny-severity", "high")

    denied = get_manifest(server, repo, tag)
    assert denied.status_code == 403
    assert "critical vulnerability GHSA-pp11-aaaa-bbbb in openssl 3.0.1" in _message(denied)

    cli(server, "policy", "set", ns, "--deny-severity", "high", "--exception", "CVE-2026-11111",
        "--until", "2999-12-31", "--reason", "not reachable")
    _eventually(lambda: get_manifest(server, repo, tag).status_code == 200, "the exception")
    assert _statuses(server, repo, tag, image.digest) == [200, 200, 200, 200]

    cli(server, "policy", "set", ns, "--deny-severity", "high", "--exception", "CVE-2026-11111",
        "--until", "2000-01-01", "--reason", "not reachable")
    _eventually(lambda: get_manifest(server, repo, tag).status_code == 403, "the expiry")
    assert _statuses(server, repo, tag, image.digest) == [403, 403, 403, 403]


def test_deny_unscanned_refuses_a_pending_report(server: Server) -> None:
    ns = _namespace()
    repo, tag, image = _push(server, ns)
    _write_report(server, repo, image.digest, status="pending")
    cli(server, "policy", "set", ns, "--deny-unscanned")

    denied = get_manifest(server, repo, image.digest, "GET")
    assert denied.status_code == 403
    assert "its scan is pending" in _message(denied)
    assert get_manifest(server, repo, tag, "HEAD").status_code == 403


def test_a_dry_run_serves_and_audits_what_it_would_have_denied(server: Server, tmp_path: Path) -> None:
    ns = _namespace()
    trust_key(server, tmp_path, ns, "release", p256())
    repo, tag, image = _push(server, ns)
    cli(server, "policy", "set", ns, "--require-signature", "--dry-run")

    assert _statuses(server, repo, tag, image.digest) == [200, 200, 200, 200]

    def audited() -> list[dict[str, Any]]:
        out = cli(server, "audit", "--action", "pull.policy", "--repository", repo,
                  "--jsonl").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    _eventually(lambda: bool(audited()), "the dry-run audit event")
    rows = audited()
    assert {(r["outcome"], r["detail"]["rule"]) for r in rows} == {("dry-run",
                                                                     "require-signature")}


def test_policy_show_prints_the_whole_policy_and_bad_input_is_refused(server: Server) -> None:
    ns = _namespace()
    cli(server, "policy", "set", ns, "--deny-secrets", "--deny-severity", "critical",
        "--exception", "CVE-1", "--until", "2999-01-01", "--reason", "vendor fix pending")
    shown = json.loads(cli(server, "policy", "show", ns, "--json").stdout)
    assert shown == {"namespace": ns, "version": 1, "require_signature": False,
                     "deny_severity": "critical", "deny_secrets": True,
                     "deny_unsafe_models": False, "deny_unscanned": False, "dry_run": False,
                     "exceptions": [{"id": "CVE-1", "until": "2999-01-01",
                                     "reason": "vendor fix pending"}]}
    cli(server, "policy", "set", ns)
    shown = json.loads(cli(server, "policy", "show", ns, "--json").stdout)
    assert (shown["version"], shown["deny_secrets"], shown["exceptions"]) == (2, False, [])
    assert "is one of" in cli(server, "policy", "set", ns, "--deny-severity", "worst",
                              code=1).output
    cli(server, "policy", "set", ns, "--exception", "CVE-1", code=2)


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_skopeo_inspect_and_copy_are_denied_then_allowed(server: Server, tmp_path: Path) -> None:
    ns = _namespace()
    trust_key(server, tmp_path, ns, "release", p256())
    repo, tag, _ = _push(server, ns)
    cli(server, "policy", "set", ns, "--require-signature")
    src = f"docker://{server.host}/{repo}:{tag}"

    def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["skopeo", *args], check=False, capture_output=True, text=True,
                              timeout=120)

    inspect = skopeo("inspect", "--tls-verify=false", src)
    assert inspect.returncode != 0
    assert "not signed by a key trusted" in inspect.stderr
    copy = skopeo("copy", "--src-tls-verify=false", src, f"dir:{tmp_path / 'denied'}")
    assert copy.returncode != 0

    cli(server, "policy", "set", ns)
    _eventually(lambda: skopeo("inspect", "--tls-verify=false", src).returncode == 0,
                "skopeo inspect to be allowed")
    copy = skopeo("copy", "--src-tls-verify=false", src, f"dir:{tmp_path / 'allowed'}")
    assert copy.returncode == 0, copy.stderr
    assert (tmp_path / "allowed" / "manifest.json").exists()
