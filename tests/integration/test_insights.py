"""Image size insights through a real server: the job queued on push reports a pip cache, a
file overwritten later, a file deleted by a whiteout and a layer shared with another image,
with their byte counts; the API wants pull access; the CLI prints the advice and picks an
index's platform."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator

import pytest
from auth.authkit import ADMIN, new_password, push_image, start_auth_registry, uniq
from support.http import call, describe
from support.oci import OCI_LAYER_GZIP, OCI_LAYER_TAR, Blob, make_image, make_index, tar_of
from support.servers import Server

from .test_sbom_on_push import FAST, _cli

TIMEOUT = 120.0  # a loaded 2-core box runs the job late; the job itself takes a second
MB = 1_000_000
ENV = {**FAST, "MOORAGE_SBOM_ON_PUSH": "0", "MOORAGE_INSIGHTS_ON_PUSH": "1"}


class Insights:
    def __init__(self, reg: Server, admin: tuple[str, str]) -> None:
        self.reg, self.admin = reg, admin

    def api(self, repo: str, digest: str, auth=None):
        return call("GET", f"{self.reg.url}/api/v1/insights/{repo}/{digest}", auth=auth)

    def wait(self, repo: str, digest: str) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            r = self.api(repo, digest, auth=self.admin)
            if r.status_code == 200:
                return r.json()
            assert r.status_code == 404, describe(r)
            time.sleep(0.3)
        raise AssertionError(f"no insights for {repo}@{digest} after {TIMEOUT}s")


@pytest.fixture(scope="module")
def insights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Insights]:
    password = new_password()
    reg = start_auth_registry(tmp_path_factory.mktemp("insights"), "--workers", "1",
                              admin_password=password, **ENV)
    yield Insights(reg, (ADMIN, password))
    reg.stop()


BASE = Blob(gzip.compress(tar_of({"etc/os-release": b"ID=debian\n"}), mtime=0), OCI_LAYER_GZIP)


def test_the_report_names_the_cache_the_overwrite_the_whiteout_and_the_shared_layer(
        insights: Insights) -> None:
    s = insights
    base_repo = f"{uniq('ins')}/base"
    other = push_image(s.reg, base_repo, "v1", s.admin, make_image(layer_blobs=[BASE]))
    repo = f"{uniq('ins')}/app"
    build = Blob(tar_of({"root/.cache/pip/wheels/ab/torch.whl": 12 * MB,
                         "app/config.json": b'{"debug": true}', "tmp/build.log": 3 * MB}),
                 OCI_LAYER_TAR)
    fix = Blob(gzip.compress(tar_of({"app/config.json": b"{}", "tmp/.wh.build.log": b""}),
                             mtime=0), OCI_LAYER_GZIP)
    image = push_image(s.reg, repo, "v1", s.admin, make_image(layer_blobs=[BASE, build, fix]))
    report = s.wait(repo, image.digest)
    assert report["status"] == "done", report
    assert [(x["digest"], x["compressed"], x["shared_with"]) for x in report["layers"]] == [
        (BASE.digest, len(BASE.data), 1), (build.digest, len(build.data), 0),
        (fix.digest, len(fix.data), 0)]
    assert report["shared"] == {"layers": 1, "bytes": len(BASE.data)}
    assert report["deleted"] == {"files": 1, "bytes": 3 * MB, "largest": [
        {"path": "/tmp/build.log", "size": 3 * MB, "layer": 2, "by_layer": 3}]}
    assert report["overwritten"] == {"files": 1, "bytes": 15, "largest": [
        {"path": "/app/config.json", "size": 15, "layer": 2, "by_layer": 3}]}
    assert report["duplicates"]["files"] == 0
    assert report["largest_files"][0] == {"path": "/root/.cache/pip/wheels/ab/torch.whl",
                                          "size": 12 * MB, "layer": 2}
    assert [(a["rule"], a["layer"], a["bytes"]) for a in report["advice"]] == [
        ("pip_cache", 2, 12 * MB)]
    assert report["advice"][0]["message"].startswith(
        "pip cache left in layer 2 (/root/.cache/pip): 12 MB")
    assert s.wait(base_repo, other.digest)["layers"][0]["shared_with"] == 1

    shown = _cli(s.reg, "insights", f"{repo}:v1").stdout
    assert "pip cache left in layer 2 (/root/.cache/pip): 12 MB" in shown
    assert "deleted: 1 files, 3.0 MB" in shown
    as_json = json.loads(_cli(s.reg, "insights", f"{repo}@{image.digest}", "--json")
                         .stdout.splitlines()[-1])
    assert as_json["advice"] == report["advice"]
    queued = _cli(s.reg, "insights", "run", f"{repo}:v1").stdout
    assert f"{repo}@{image.digest}: insights queued (job " in queued


def test_the_api_wants_credentials_and_pull_permission(insights: Insights) -> None:
    s, repo = insights, f"{uniq('ins')}/app"
    image = push_image(s.reg, repo, "v1", s.admin)
    s.wait(repo, image.digest)
    r = s.api(repo, image.digest)
    assert r.status_code == 401, describe(r)
    assert "WWW-Authenticate" in r.headers
    outsider = (uniq("u"), new_password())
    r = call("POST", f"{s.reg.url}/api/v1/users", auth=s.admin,
             json={"name": outsider[0], "password": outsider[1]})
    assert r.status_code == 201, describe(r)
    r = s.api(repo, image.digest, auth=outsider)
    assert r.status_code == 403, describe(r)
    assert r.json()["errors"][0]["code"] == "DENIED"
    missing = "sha256:" + "0" * 64
    r = s.api(repo, missing, auth=s.admin)
    assert r.status_code == 404, describe(r)
    assert r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_the_cli_picks_an_index_platform(insights: Insights) -> None:
    s, repo = insights, f"{uniq('ins')}/multi"
    amd = make_image(layer_blobs=[Blob(gzip.compress(tar_of({"bin/amd": b"x86"}), mtime=0),
                                       OCI_LAYER_GZIP)])
    arm = make_image(layer_blobs=[Blob(gzip.compress(tar_of({"bin/arm": b"arm64!"}), mtime=0),
                                       OCI_LAYER_GZIP)])
    push_image(s.reg, repo, "amd", s.admin, amd)
    push_image(s.reg, repo, "arm", s.admin, arm)
    index = make_index([amd, arm])
    push_image(s.reg, repo, "multi", s.admin, index)
    assert s.wait(repo, index.digest)["manifests"] == [
        {"digest": amd.digest, "platform": "linux/amd64"},
        {"digest": arm.digest, "platform": "linux/arm64"}]
    out = json.loads(_cli(s.reg, "insights", f"{repo}:multi", "--platform", "linux/arm64",
                          "--json").stdout.splitlines()[-1])
    assert (out["digest"], out["largest_files"]) == (
        arm.digest, [{"path": "/bin/arm", "size": 6, "layer": 1}])
    bad = _cli(s.reg, "insights", f"{repo}:multi", "--platform", "linux/s390x", check=False)
    assert bad.returncode == 1 and "has no linux/s390x image" in bad.stderr
