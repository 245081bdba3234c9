"""Scan reports through a real auth-enabled server with SBOM/scan on push and jobs in the
server: a pushed image's report is pending until its job has run, then done with its findings
(`moorage scan show` and the API answer the same JSON; the API wants pull permission); a
non-image artifact is unsupported with a reason; no planted secret reaches the server log."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth.authkit import ADMIN, new_password, push_image, start_auth_registry, uniq
from support.http import call, describe
from support.oci import OCI_LAYER_GZIP, Blob, make_artifact, make_image
from support.servers import BACKEND, Server, log_text

from .test_metrics import scrape, value
from .test_sbom_on_push import FAST, METADATA, _cli, _tar

TIMEOUT = 90.0
OS_RELEASE = b'ID=debian\nVERSION_ID="12"\n'
DPKG = (b"Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\n"
        b"Source: openssl (1:3.0.11-1~deb12u2)\nVersion: 1:3.0.11-1~deb12u2\n")
HF_TOKEN = "hf_" + "IntegrationTokenQzWkRbTnYpLmXcVsDf"
OSV = {"schema_version": "1.6.0", "id": "DSA-9101-1", "modified": "2024-03-01T10:00:00Z",
       "aliases": ["CVE-2099-9101"], "summary": "openssl - security update", "details": "",
       "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                     "ranges": [{"type": "ECOSYSTEM", "events": [
                         {"introduced": "0"}, {"fixed": "1:3.0.11-1~deb12u3"}]}]}]}


class Scanning:
    def __init__(self, reg: Server, admin: tuple[str, str], record: Path) -> None:
        self.reg, self.admin, self.record = reg, admin, record

    def cli(self, *args: str, check: bool = True):
        return _cli(self.reg, *args, check=check)

    def api(self, repo: str, digest: str, auth=None):
        return call("GET", f"{self.reg.url}/api/v1/repositories/{repo}/manifests/{digest}/scan",
                    auth=auth)


@pytest.fixture(scope="module")
def scanning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scanning]:
    """One worker, one job at a time (so a sleeping job holds the scan back), test jobs on."""
    tmp = tmp_path_factory.mktemp("scans")
    password = new_password()
    reg = start_auth_registry(tmp, "--workers", "1", admin_password=password,
                              MOORAGE_TEST_JOBS="1", MOORAGE_JOB_CONCURRENCY="1", **FAST)
    osv = tmp / "osv"
    osv.mkdir()
    (osv / "DSA-9101-1.json").write_text(json.dumps(OSV))
    s = Scanning(reg, (ADMIN, password), tmp / "sleep.jsonl")
    s.cli("vulndb", "import", str(osv))
    yield s
    reg.stop()


def _image():
    lower = gzip.compress(_tar({"etc/os-release": OS_RELEASE, "var/lib/dpkg/status": DPKG,
                                "app/.env": f"HF_TOKEN={HF_TOKEN}\n".encode()}), mtime=0)
    upper = gzip.compress(_tar({
        "usr/lib/python3/site-packages/requests-2.31.0.dist-info/METADATA": METADATA}), mtime=0)
    return make_image(layer_blobs=[Blob(lower, OCI_LAYER_GZIP), Blob(upper, OCI_LAYER_GZIP)])


def _wait(check, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} after {timeout}s")


def _show(s: Scanning, ref: str) -> dict:
    return json.loads(s.cli("scan", "show", ref, "--json").stdout.splitlines()[-1])


def _hold_the_worker(s: Scanning, seconds: float) -> None:
    """Queue a sleeping job and wait until the server's one job slot runs it."""
    s.cli("jobs", "enqueue", "test.sleep", "--payload",
          json.dumps({"seconds": seconds, "record": str(s.record)}))
    _wait(lambda: s.record.exists() and "start" in s.record.read_text(), "the sleeper started")


@pytest.mark.skipif(BACKEND == "pg-s3-lb",
                    reason="holds the one job slot of one node; a cluster has three")
def test_a_pushed_image_is_pending_then_done_with_its_findings(scanning: Scanning) -> None:
    s, repo = scanning, f"{uniq('scan')}/app"
    # Long enough for a push and a CLI read on a loaded 2-core box (6 s was not, in CI).
    _hold_the_worker(s, 25)
    image = push_image(s.reg, repo, "v1", s.admin, _image())
    pending = _show(s, f"{repo}:v1")
    assert pending["status"] == "pending"
    assert pending["vulnerabilities"] == [] and pending["secrets"] == []

    done = _wait(lambda: (r := _show(s, f"{repo}:v1"))["status"] == "done" and r,
                 "no done report")
    lower, upper = image.blobs[1].digest, image.blobs[2].digest
    assert sorted((p["name"], p["layer"]) for p in done["packages"]) == [
        ("Requests", upper), ("libssl3", lower)]
    assert [(v["id"], v["package"], v["fixed"], v["layer"]) for v in done["vulnerabilities"]] == [
        ("DSA-9101-1", "libssl3", "1:3.0.11-1~deb12u3", lower)]
    assert [(x["rule"], x["path"], x["layer"]) for x in done["secrets"]] == [
        ("huggingface-token", "app/.env", lower)]
    assert done["model_findings"] == []

    # The API answers the same JSON, to anyone who may pull.
    r = s.api(repo, image.digest, auth=s.admin)
    assert r.status_code == 200, describe(r)
    assert r.json() == done
    assert set(r.json()) == {"status", "reason", "error", "scanned_at", "packages",
                             "vulnerabilities", "secrets", "model_findings"}
    table = s.cli("scan", "show", f"{repo}@{image.digest}").stdout
    assert "DSA-9101-1" in table and "huggingface-token" in table
    for text in (json.dumps(done), table, log_text(s.reg)):
        assert HF_TOKEN not in text
    samples = scrape(s.reg)
    assert (value(samples, "moorage_scans_total", kind="image", outcome="done") or 0) >= 1


def test_the_api_wants_credentials_and_pull_permission(scanning: Scanning) -> None:
    s, repo = scanning, f"{uniq('scan')}/app"
    image = push_image(s.reg, repo, "v1", s.admin)
    r = s.api(repo, image.digest)
    assert r.status_code == 401, describe(r)
    outsider = (uniq("u"), new_password())
    r = call("POST", f"{s.reg.url}/api/v1/users", auth=s.admin,
             json={"name": outsider[0], "password": outsider[1]})
    assert r.status_code == 201, describe(r)
    r = s.api(repo, image.digest, auth=outsider)
    assert r.status_code == 403, describe(r)
    assert r.json()["errors"][0]["code"] == "DENIED"


def test_a_non_image_artifact_is_unsupported_with_a_reason(scanning: Scanning) -> None:
    s, repo = scanning, f"{uniq('scan')}/art"
    art = make_artifact("application/vnd.example.thing.v1")
    push_image(s.reg, repo, "thing", s.admin, art)
    report = _wait(lambda: (r := _show(s, f"{repo}:thing"))["status"] != "pending" and r,
                   "the artifact's report is still pending")
    assert report["status"] == "unsupported"
    assert report["reason"] == ("artifact type application/vnd.example.thing.v1 is not "
                                "scanned (only container images and model artifacts are)")
    assert report["packages"] == [] and report["vulnerabilities"] == []
    assert (value(scrape(s.reg), "moorage_scans_total", kind="other", outcome="unsupported")
            or 0) >= 1
