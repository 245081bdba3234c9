"""Delta push and pull with `moorage push`/`moorage pull` (the `_moorage.chunks` extension): a
fine-tune sends only its changed chunks (counted at the server), a killed push resumes, the
artifact pulls byte-identical through plain OCI and through `moorage pull` (chunks cached),
hostile bodies get the spec's errors, and a pull-only user cannot write."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.http import call, describe, http
from support.models import file_layer, modelpack
from support.oci import assert_error, blob_url, manifest_url, new_repo, push_tree
from support.servers import BACKEND, TEST_DEFAULTS, Server, run_moorage, start_local, start_registry
from support.weights import safetensors

pytestmark = pytest.mark.skipif(BACKEND == "pg-s3-lb", reason="one node's byte counters")
SIZE = 64 << 20
PASSWORD = "delta-admin-pass-1"


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own (its received bytes are measured)."""
    server = start_registry(tmp_path_factory.mktemp("delta"), "--workers", "1")
    yield server
    server.stop()


def counter(reg: Server, name: str) -> float:
    """A counter summed over its series, from one scrape."""
    r = http.get(reg.url + "/metrics")
    assert r.status_code == 200, describe(r)
    return sum(s.value for f in text_string_to_metric_families(r.text) for s in f.samples
               if s.name == name)


def received(reg: Server) -> float:
    return counter(reg, "moorage_http_bytes_received_total")


def sent(reg: Server) -> float:
    return counter(reg, "moorage_http_bytes_sent_total")


def model_dir(root: Path, version: int, seed: int = 1) -> Path:
    """A model directory: safetensors weights (version > 0: 5 % of tensors changed) and a card."""
    root.mkdir(parents=True)
    (root / "model.safetensors").write_bytes(safetensors(SIZE, seed=seed, version=version))
    (root / "docs").mkdir()
    (root / "docs" / "README.md").write_text(f"# model v{version}\n")
    return root


def push(reg: Server, source: Path, ref: str, *extra: str) -> str:
    p = run_moorage("push", str(source), ref, "--registry", reg.url, "-q", *extra, timeout=300)
    return p.stdout


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def pushed(reg: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """v0 pushed in full, then v1 (a fine-tune) by delta: bytes the server received for each."""
    root = tmp_path_factory.mktemp("models")
    repo = new_repo("delta")
    v0, v1 = model_dir(root / "v0", 0), model_dir(root / "v1", 1)
    before = received(reg)
    push(reg, v0, f"{repo}:v0")
    middle = received(reg)
    push(reg, v1, f"{repo}:v1")
    return {"repo": repo, "v0": v0, "v1": v1, "full": middle - before,
            "delta": received(reg) - middle}


def test_a_fine_tune_sends_at_most_a_tenth_of_its_size(pushed: dict) -> None:
    assert pushed["full"] >= SIZE, pushed
    assert pushed["delta"] <= 0.10 * SIZE, pushed


def test_the_registry_advertises_the_extension(reg: Server) -> None:
    r = http.get(reg.url + "/v2/")
    assert r.headers.get("Moorage-Extensions") == "chunks/v1", describe(r)
    r = http.get(reg.url + "/v2/_oci/ext/discover")
    assert r.status_code == 200, describe(r)
    (ext,) = r.json()["extensions"]
    assert ext["name"] == "_moorage.chunks" and ext["url"].startswith("https://"), ext


def test_the_push_is_a_modelpack_that_pulls_through_plain_oci(reg: Server, pushed: dict) -> None:
    r = http.get(manifest_url(reg, pushed["repo"], "v1"),
                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 200, describe(r)
    manifest = r.json()
    assert manifest["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    layers = {la["annotations"]["org.cncf.model.filepath"]: la for la in manifest["layers"]}
    assert layers["model.safetensors"]["mediaType"] == "application/vnd.cncf.model.weight.v1.raw"
    assert layers["docs/README.md"]["mediaType"] == "application/vnd.cncf.model.doc.v1.raw"
    for name, data in files_of(pushed["v1"]).items():
        blob = http.get(blob_url(reg, pushed["repo"], layers[name]["digest"]))
        assert blob.status_code == 200 and blob.content == data, name


def test_moorage_pull_is_byte_identical_and_fetches_only_missing_chunks(
        reg: Server, pushed: dict, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    before = sent(reg)
    run_moorage("pull", f"{pushed['repo']}:v0", str(tmp_path / "a"), "--registry", reg.url,
                "--cache", str(cache), "-q", timeout=300)
    first = sent(reg) - before
    assert files_of(tmp_path / "a") == files_of(pushed["v0"])
    assert first >= SIZE
    run_moorage("pull", f"{pushed['repo']}:v1", str(tmp_path / "b"), "--registry", reg.url,
                "--cache", str(cache), "-q", timeout=300)
    assert files_of(tmp_path / "b") == files_of(pushed["v1"])
    assert sent(reg) - before - first <= 0.10 * SIZE


def test_a_plain_oci_push_when_delta_is_off(reg: Server, tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    data = os.urandom(3 << 20)
    (model / "weights.bin").write_bytes(data)
    repo = new_repo("plain")
    push(reg, model, f"{repo}:v0", "--plain")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    # uploaded whole (chunk dedup is off on this server): no recipe, so the pull is a blob GET
    assert_error(http.get(ext(reg, repo, f"recipes/{digest}")), 404, "BLOB_UNKNOWN")
    run_moorage("pull", f"{repo}:v0", str(tmp_path / "out"), "--registry", reg.url, "-q",
                "--cache", str(tmp_path / "cache"))
    assert files_of(tmp_path / "out") == files_of(model)
    assert not (tmp_path / "cache").exists()


def test_a_killed_push_sends_only_the_rest_when_run_again(reg: Server, tmp_path: Path) -> None:
    model = model_dir(tmp_path / "m", 0, seed=7)
    ref = f"{new_repo('resume')}:v0"
    cmd = [sys.executable, "-m", "moorage", "push", str(model), ref, "--registry", reg.url,
           "-q", "--parallel", "1", "--batch-size", str(1 << 20)]
    before = received(reg)
    proc = subprocess.Popen(cmd, env={**TEST_DEFAULTS, **os.environ},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while received(reg) - before < 0.2 * SIZE:
            assert proc.poll() is None, "the push ended before it could be killed"
            assert time.monotonic() < deadline, "the push did not start sending"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    cut = received(reg) - before
    assert cut < 0.9 * SIZE, cut
    push(reg, model, ref)
    rest = received(reg) - before - cut
    assert rest <= SIZE - cut + 0.05 * SIZE, (cut, rest)
    assert rest < 0.85 * SIZE, (cut, rest)
    repo, tag = ref.rsplit(":", 1)
    layers = http.get(manifest_url(reg, repo, tag)).json()["layers"]
    weights = next(la for la in layers if la["size"] > SIZE // 2)
    blob = http.get(blob_url(reg, repo, weights["digest"]))
    assert hashlib.sha256(blob.content).hexdigest() == weights["digest"].split(":")[1]


@pytest.mark.parametrize("name", ["../escape.txt", "/tmp/moorage-escape.txt", "a/../../e.txt"])
def test_moorage_pull_refuses_paths_outside_the_target(reg: Server, tmp_path: Path,
                                                       name: str) -> None:
    repo = new_repo("evil")
    layer = file_layer(b"not yours", "application/vnd.cncf.model.doc.v1.raw", name)
    push_tree(reg, repo, modelpack([layer], name="evil"), "v1")
    target = tmp_path / "deep" / "target"
    p = run_moorage("pull", f"{repo}:v1", str(target), "--registry", reg.url, "-q",
                    "--cache", str(tmp_path / "cache"), check=False)
    assert p.returncode == 1 and "refusing" in p.stderr, p.stderr
    assert [f for f in tmp_path.rglob("*") if f.is_file()] == []
    assert not Path("/tmp/moorage-escape.txt").exists()


# -- hostile input -------------------------------------------------------------------------------


def ext(reg: Server, repo: str, path: str) -> str:
    return f"{reg.url}/v2/{repo}/moorage/{path}"


def batch(lengths: list[int], data: bytes) -> bytes:
    return json.dumps({"lengths": lengths}).encode() + b"\n" + data


BATCH = {"Content-Type": "application/vnd.moorage.chunks.v1"}


def test_an_oversize_id_list_is_refused(reg: Server) -> None:
    ids = ["0" * 64] * 100_001
    r = http.post(ext(reg, new_repo(), "chunks/missing"), data=json.dumps(ids))
    assert_error(r, 400, "SIZE_INVALID")


def test_missing_lists_what_the_registry_lacks(reg: Server) -> None:
    repo = new_repo()
    r = http.post(ext(reg, repo, "chunks"), data=batch([5], b"hello"), headers=BATCH)
    assert r.status_code == 201, describe(r)
    (have,) = r.json()["ids"]
    r = http.post(ext(reg, repo, "chunks/missing"), data=json.dumps([have, "a" * 64]))
    assert r.status_code == 200 and r.json() == {"missing": ["a" * 64]}, describe(r)


def test_a_batch_whose_lengths_lie_is_refused(reg: Server) -> None:
    repo = new_repo()
    for lengths in ([4], [6], [2, 2]):  # fewer, more, and fewer bytes than sent
        r = http.post(ext(reg, repo, "chunks"), data=batch(lengths, b"hello"), headers=BATCH)
        assert_error(r, 400, "BLOB_UPLOAD_INVALID")


def test_a_recipe_with_a_wrong_digest_or_a_missing_chunk_is_refused(reg: Server) -> None:
    repo = new_repo()
    r = http.post(ext(reg, repo, "chunks"), data=batch([5, 6], b"hello world"), headers=BATCH)
    assert r.status_code == 201, describe(r)
    a, b = r.json()["ids"]
    recipe = {"chunks": [[a, 5], [b, 6]]}
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    r = http.put(ext(reg, repo, f"recipes/{wrong}"), data=json.dumps(recipe))
    assert_error(r, 400, "DIGEST_INVALID")
    right = "sha256:" + hashlib.sha256(b"hello world").hexdigest()
    lost = "b" * 64
    r = http.put(ext(reg, repo, f"recipes/{right}"),
                 data=json.dumps({"chunks": [[a, 5], [lost, 6]]}))
    assert_error(r, 400, "BLOB_UNKNOWN")
    assert r.json()["errors"][0]["detail"]["missing"] == [lost]
    r = http.put(ext(reg, repo, f"recipes/{right}"), data=json.dumps(recipe))
    assert r.status_code == 201, describe(r)
    assert r.headers["Location"] == f"/v2/{repo}/blobs/{right}"
    assert http.get(blob_url(reg, repo, right)).content == b"hello world"
    r = http.get(ext(reg, repo, f"recipes/{right}"))
    assert r.json()["chunks"] == [[a, 5], [b, 6]], describe(r)
    assert_error(http.get(ext(reg, new_repo(), f"recipes/{right}")), 404, "BLOB_UNKNOWN")


def test_a_pull_only_user_cannot_write(tmp_path: Path) -> None:
    server = start_local(tmp_path / "data", "--workers", "1", auth=True,
                         MOORAGE_ADMIN_PASSWORD=PASSWORD)
    admin, api = ("admin", PASSWORD), server.url + "/api/v1"
    try:
        reader = ("reader", "reader-pass-123")
        for method, path, body in (
                ("POST", "/users", {"name": reader[0], "password": reader[1]}),
                ("POST", "/namespaces", {"name": "team"}),
                ("PUT", "/namespaces/team/members/reader", {"role": "reader"})):
            r = call(method, api + path, auth=admin, json=body)
            assert r.status_code in (200, 201, 204), describe(r)
        base = f"{server.url}/v2/team/model/moorage/"
        digest = "sha256:" + hashlib.sha256(b"hello").hexdigest()
        r = call("POST", base + "chunks", auth=reader, data=batch([5], b"hello"),
                 headers=BATCH)
        assert_error(r, 403, "DENIED")
        r = call("PUT", base + f"recipes/{digest}", auth=reader, data=b'{"chunks": []}')
        assert_error(r, 403, "DENIED")
        r = call("POST", base + "chunks", auth=admin, data=batch([5], b"hello"),
                 headers=BATCH)
        assert r.status_code == 201, describe(r)
    finally:
        server.stop()


def test_chunks_are_fetched_only_through_a_repository_that_holds_them(tmp_path: Path) -> None:
    """Repository scoping: a chunk id (a content hash) never opens another repository's
    content; fetching it elsewhere answers as for a chunk never stored."""
    server = start_local(tmp_path / "data", "--workers", "1", auth=True,
                         MOORAGE_ADMIN_PASSWORD=PASSWORD)
    admin, api = ("admin", PASSWORD), server.url + "/api/v1"
    try:
        reader = ("reader", "reader-pass-123")
        for method, path, body in (
                ("POST", "/users", {"name": reader[0], "password": reader[1]}),
                ("POST", "/namespaces", {"name": "team"}),
                ("POST", "/namespaces", {"name": "secret"}),
                ("PUT", "/namespaces/team/members/reader", {"role": "reader"})):
            r = call(method, api + path, auth=admin, json=body)
            assert r.status_code in (200, 201, 204), describe(r)
        data = os.urandom(200_000)
        secret = f"{server.url}/v2/secret/weights/moorage/"
        r = call("POST", secret + "chunks", auth=admin, data=batch([len(data)], data),
                 headers=BATCH)
        assert r.status_code == 201, describe(r)
        (chunk,) = r.json()["ids"]
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = call("PUT", secret + f"recipes/{digest}", auth=admin,
                 data=json.dumps({"chunks": [[chunk, len(data)]]}))
        assert r.status_code == 201, describe(r)

        r = call("POST", secret + "chunks/fetch", auth=admin, data=json.dumps([chunk]))
        assert r.status_code == 200, describe(r)
        assert r.content.endswith(data)  # the holder's own repository serves it
        for who in (reader, admin):  # elsewhere: unknown, even to the admin
            r = call("POST", f"{server.url}/v2/team/model/moorage/chunks/fetch", auth=who,
                     data=json.dumps([chunk]))
            assert_error(r, 400, "BLOB_UNKNOWN")
            assert data[:64] not in r.content
    finally:
        server.stop()
