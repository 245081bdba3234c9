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
from support.metrics import scrape_all
from support.oci import get_manifest, make_artifact, make_image, make_index, new_tag, push_tree
from support.servers import Server, start_registry

from moorage.cli.common import Target, open_existing

from .signing_fixtures import (
    attestation,
    bundle_attestation,
    cosign_signature,
    cosign_tag,
    p256,
    slsa_statement,
)
from .test_metrics import value
from .test_signatures import _target, cli, trust_key

TIMEOUT = 30.0
CYCLONEDX = "application/vnd.cyclonedx+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # No scans on push: each test writes the scan report it needs.
    reg = start_registry(tmp_path_factory.mktemp("pullpolicy"), MOORAGE_SBOM_ON_PUSH="0",
                         MOORAGE_PULL_POLICY_CACHE_SECONDS="0.2",
                         MOORAGE_METRICS_CACHE_SECONDS="0")
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
                     "require_provenance": False, "builder": None,
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
    assert "--builder needs --require-provenance" in cli(
        server, "policy", "set", ns, "--builder", "https://ci/*", code=1).output


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


# -- provenance ----------------------------------------------------------------------------------

def _att_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".att"


def _slsa_v02(digest: str, builder: str) -> dict[str, Any]:
    return {"_type": "https://in-toto.io/Statement/v0.1",
            "subject": [{"name": "image", "digest": {"sha256": digest.split(":", 1)[1]}}],
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "predicate": {"builder": {"id": builder}, "buildType": "https://example/build",
                          "invocation": {"configSource": {
                              "uri": "git+https://git.example/app", "digest": {"sha1": "ab" * 20}}},
                          "metadata": {"buildStartedOn": "2026-11-30T10:00:00Z"}}}


def test_require_provenance_needs_a_trusted_slsa_attestation(server: Server, tmp_path: Path) -> None:
    ns = _namespace()
    key = p256()
    trust_key(server, tmp_path, ns, "release", key)
    attested_repo, attested_tag, attested = _push(server, ns)
    push_tree(server, attested_repo, attestation(key, slsa_statement(attested.digest)),
              tag=_att_tag(attested.digest))
    bare_repo, bare_tag, bare = _push(server, ns)
    untrusted_repo, untrusted_tag, untrusted = _push(server, ns)
    push_tree(server, untrusted_repo, attestation(p256(), slsa_statement(untrusted.digest)),
              tag=_att_tag(untrusted.digest))
    other_repo, other_tag, other = _push(server, ns)
    # A provenance that names another image: it does not attest this one.
    push_tree(server, other_repo, attestation(key, slsa_statement(attested.digest)),
              tag=_att_tag(other.digest))
    cli(server, "policy", "set", ns, "--require-provenance")

    assert _statuses(server, attested_repo, attested_tag, attested.digest) == [200] * 4
    assert _statuses(server, bare_repo, bare_tag, bare.digest) == [403] * 4
    assert _statuses(server, untrusted_repo, untrusted_tag, untrusted.digest) == [403] * 4
    assert _statuses(server, other_repo, other_tag, other.digest) == [403] * 4
    assert _message(get_manifest(server, bare_repo, bare_tag)) == (
        f"{bare_repo}@{bare.digest} has no SLSA provenance attestation verified by a key "
        f"trusted for namespace {ns}: attest it (`cosign attest --type slsaprovenance`) with a "
        f"key from `moorage trust list {ns}`, or ask an admin to add yours")
    # The attestation itself stays pullable (clients verify it before they pull).
    assert get_manifest(server, attested_repo, _att_tag(attested.digest)).status_code == 200


def test_require_provenance_with_a_builder_glob(server: Server, tmp_path: Path) -> None:
    ns = _namespace()
    key = p256()
    trust_key(server, tmp_path, ns, "release", key)
    v1_repo, v1_tag, v1 = _push(server, ns)  # built by https://github.com/actions/runner
    push_tree(server, v1_repo, bundle_attestation(key, v1, slsa_statement(v1.digest)))
    v02_repo, v02_tag, v02 = _push(server, ns)
    push_tree(server, v02_repo, attestation(key, _slsa_v02(v02.digest, "https://ci.example/b1")),
              tag=_att_tag(v02.digest))
    cli(server, "policy", "set", ns, "--require-provenance", "--builder",
        "https://github.com/actions/*")
    shown = json.loads(cli(server, "policy", "show", ns, "--json").stdout)
    assert (shown["require_provenance"], shown["builder"]) == (True, "https://github.com/actions/*")

    assert _statuses(server, v1_repo, v1_tag, v1.digest) == [200] * 4
    assert _statuses(server, v02_repo, v02_tag, v02.digest) == [403] * 4
    assert _message(get_manifest(server, v02_repo, v02_tag)) == (
        f"{v02_repo}@{v02.digest} has verified provenance from builder https://ci.example/b1, "
        f"but namespace {ns} requires a builder matching 'https://github.com/actions/*': build "
        f"it there and attest it, or ask an admin to change the policy")

    cli(server, "policy", "set", ns, "--require-provenance", "--builder", "https://ci.example/*")
    _eventually(lambda: get_manifest(server, v02_repo, v02_tag).status_code == 200,
                "the v0.2 provenance to match the new builder glob")
    assert _statuses(server, v1_repo, v1_tag, v1.digest) == [403] * 4


# -- indexes -------------------------------------------------------------------------------------

def _sign(reg: Server, repo: str, key: Any, m: Any) -> None:
    push_tree(reg, repo, cosign_signature(key, m.digest, f"{reg.host}/{repo}"),
              tag=cosign_tag(m.digest))


def test_an_index_is_denied_when_a_child_fails_and_served_when_all_pass(server: Server, tmp_path: Path) -> None:
    ns = _namespace()
    key = p256()
    trust_key(server, tmp_path, ns, "release", key)
    repo = f"{ns}/multi"
    amd, arm = make_image(layers=1), make_image(layers=1)
    half = make_index([amd, arm])  # amd64 and arm64
    push_tree(server, repo, half, tag="half")
    _sign(server, repo, key, amd)
    good_amd, good_arm = make_image(layers=1), make_image(layers=1)
    # A buildx attestation child (unknown platform) is not an image a client runs: not checked.
    buildx = make_image(layers=1, annotations={"vnd.docker.reference.type": "attestation-manifest"})
    full = make_index([good_amd, good_arm])
    full_doc = full.json
    full_doc["manifests"].append({**buildx.descriptor(), "annotations": {
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": good_amd.digest},
        "platform": {"os": "unknown", "architecture": "unknown"}})
    full = type(full)(json.dumps(full_doc).encode(), full.media_type, children=[good_amd, good_arm,
                                                                                 buildx])
    push_tree(server, repo, full, tag="full")
    for child in (good_amd, good_arm):
        _sign(server, repo, key, child)
    cli(server, "policy", "set", ns, "--require-signature")

    assert _statuses(server, repo, "half", half.digest) == [403] * 4
    assert _message(get_manifest(server, repo, "half")) == (
        f"{repo}@{half.digest} is an index and its child {arm.digest} (linux/arm64) is denied: "
        f"{repo}@{arm.digest} is not signed by a key trusted for namespace {ns}: sign it with "
        f"cosign and a key from `moorage trust list {ns}`, or ask an admin to add yours")
    assert get_manifest(server, repo, amd.digest).status_code == 200
    assert _statuses(server, repo, "full", full.digest) == [200] * 4


def test_an_index_with_a_vulnerable_child_is_denied_though_the_index_has_no_scan(server: Server) -> None:
    ns = _namespace()
    repo = f"{ns}/multi"
    clean, vulnerable = make_image(layers=1), make_image(layers=1)
    index = make_index([clean, vulnerable])
    push_tree(server, repo, index, tag="v1")
    _write_report(server, repo, clean.digest)
    _write_report(server, repo, vulnerable.digest, vulnerabilities=[{
        "id": "CVE-2026-22222", "aliases": [], "package": "zlib", "installed": "1.2.11",
        "severity": "critical"}])
    _write_report(server, repo, index.digest, status="unsupported")
    clean_index = make_index([clean])
    push_tree(server, repo, clean_index, tag="v2")
    cli(server, "policy", "set", ns, "--deny-unscanned", "--deny-severity", "critical")

    denied = get_manifest(server, repo, "v1")
    assert denied.status_code == 403
    assert _message(denied).startswith(
        f"{repo}@{index.digest} is an index and its child {vulnerable.digest} (linux/arm64) is "
        f"denied: {repo}@{vulnerable.digest} has critical vulnerability CVE-2026-22222")
    assert [get_manifest(server, repo, "v2", m).status_code for m in ("GET", "HEAD")] == [200] * 2


# -- metrics -------------------------------------------------------------------------------------

def test_denials_are_counted_by_rule_and_findings_by_severity(server: Server) -> None:
    def denials(rule: str, dry_run: str) -> float:
        return value(scrape_all(server), "moorage_pull_denials_total", rule=rule,
                     dry_run=dry_run) or 0.0

    def findings() -> dict[str, float]:
        samples = scrape_all(server)
        return {s: value(samples, "moorage_vulnerability_findings", severity=s) or 0.0
                for s in ("critical", "high", "medium", "low")}

    ns = _namespace()
    repo, tag, image = _push(server, ns)
    before, found_before = denials("deny-secrets", "false"), findings()
    _write_report(server, repo, image.digest, vulnerabilities=[
        {"id": f"CVE-2026-{n}", "aliases": [], "package": "p", "installed": "1",
         "severity": s} for n, s in ((1, "high"), (2, "high"), (3, "medium"))])
    with_secret = {"status": "done", "secrets": [{"rule": "aws-access-key", "path": "a"}]}
    args = _target(server)
    opts = dict(zip(args[::2], args[1::2], strict=True))
    registry = open_existing(Target(Path(opts["--data-dir"]), opts.get("--database"),
                                    opts.get("--storage")).settings())
    with registry.database.write() as uow:
        report = uow.scans.get(repo, image.digest)
        uow.scans.save(repo, image.digest, {**report, **with_secret}, time.time())
    cli(server, "policy", "set", ns, "--deny-secrets")

    assert [get_manifest(server, repo, tag).status_code for _ in range(3)] == [403] * 3
    assert denials("deny-secrets", "false") - before == 3
    found = findings()
    assert {s: found[s] - found_before[s] for s in found} == {
        "critical": 0, "high": 2, "medium": 1, "low": 0}
