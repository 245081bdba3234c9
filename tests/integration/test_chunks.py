"""Chunk-level dedup over HTTP, transparent to clients: a safetensors model and its fine-tune
(5 % of tensors changed) pushed as two artifacts are stored once plus the changed chunks, pull
byte-identical (whole and with Range reads across chunk boundaries), and GC after deleting one
version keeps what the other needs and frees the rest. Runs on every test backend (one node: the CLI runs against its database and store)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.http import describe, http
from support.oci import Blob, blob_url, make_artifact, manifest_url, push_blob, push_manifest
from support.servers import BACKEND, Server, cli_target, run_moorage, start_registry
from support.weights import safetensors

pytestmark = pytest.mark.skipif(BACKEND == "pg-s3-lb", reason="the CLI needs one node's settings")
SIZE = 64 << 20
WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
NS = "dedup"


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own (its stored bytes are measured)."""
    server = start_registry(tmp_path_factory.mktemp("chunks"), "--workers", "1",
                            MOORAGE_CHUNK_DEDUP="1")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def versions(reg: Server) -> dict[str, tuple[str, bytes]]:
    """Both versions pushed, {name: (manifest digest, weights)}, once chunked."""
    pushed = {}
    for name, data in (("base", safetensors(SIZE)), ("tuned", safetensors(SIZE, version=1))):
        repo = f"{NS}/{name}"
        layer = Blob(data, WEIGHT)
        artifact = make_artifact("application/vnd.cncf.model.manifest.v1+json", layers=[layer])
        for blob in artifact.blobs:
            push_blob(reg, repo, blob.data)
        pushed[name] = (push_manifest(reg, repo, artifact.body, artifact.media_type, "v1"), data)
    wait_for(lambda: dedup(reg)["saved"] >= 0.8 * SIZE, "the fine-tune to be chunked")
    return pushed


def dedup(reg: Server) -> dict:
    r = http.get(f"{reg.url}/api/v1/namespaces/{NS}/dedup")
    assert r.status_code == 200, describe(r)
    return r.json()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def cli(reg: Server, *args: str) -> dict:
    """`moorage ARGS --json` on the server's data dir and backend; its JSON output."""
    given = list(getattr(reg, "extra_args", []))
    backend_args = [a for i, a in enumerate(given)
                    if a in ("--database", "--storage") or
                    (i and given[i - 1] in ("--database", "--storage"))]
    backend_env = dict(getattr(reg, "env", {}))
    done = subprocess.run(
        [sys.executable, "-m", "moorage", *args, "--json", "--data-dir", str(reg.data_dir),
         *backend_args], check=False, capture_output=True, text=True, timeout=600,
        env={**os.environ, **backend_env})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def gc(reg: Server, grace: str = "1h") -> dict:
    return cli(reg, "gc", "--grace-period", grace)


def stored_on_disk(reg: Server) -> int:
    root = Path(reg.data_dir) / "blobs"
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def pull(reg: Server, repo: str, digest: str, headers: dict | None = None) -> bytes:
    r = http.get(blob_url(reg, repo, digest), headers=headers or {})
    assert r.status_code == (206 if headers else 200), describe(r)
    return r.content


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_both_versions_cost_little_more_than_one(reg: Server, versions: dict) -> None:
    figures = dedup(reg)
    assert cli(reg, "dedup", "stats", NS)["namespaces"][NS] == {
        k: v for k, v in figures.items() if k != "namespace"}
    assert figures["logical"] >= 2 * SIZE
    assert figures["stored"] <= 1.15 * SIZE, figures
    if BACKEND == "fs":
        gc(reg)  # drains the fine-tune's old whole object
        assert stored_on_disk(reg) <= 1.15 * (SIZE + (1 << 20))


def test_both_versions_pull_byte_identical(reg: Server, versions: dict) -> None:
    for name, (_, data) in versions.items():
        body = pull(reg, f"{NS}/{name}", sha(data))
        assert sha(body) == sha(data)
        r = http.head(blob_url(reg, f"{NS}/{name}", sha(data)))
        assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(data)


def test_range_reads_cross_chunk_boundaries(reg: Server, versions: dict) -> None:
    _, data = versions["tuned"]
    rng = random.Random(7)
    # Longer than the largest chunk (256 KiB): each range spans at least one boundary.
    spans = [(0, 1), (len(data) - 700_000, 700_000), *(
        (rng.randrange(len(data) - 600_000), rng.randrange(300_000, 600_000)) for _ in range(6))]
    for start, n in spans:
        got = pull(reg, f"{NS}/tuned", sha(data),
                   {"Range": f"bytes={start}-{start + n - 1}"})
        assert got == data[start:start + n]


def test_dedup_metric_is_exported(reg: Server, versions: dict) -> None:
    r = http.get(f"{reg.url}/metrics")
    assert r.status_code == 200
    line = next(x for x in r.text.splitlines()
                if x.startswith(f'moorage_dedup_saved_bytes{{namespace="{NS}"}}'))
    assert float(line.split()[-1]) >= 0.8 * SIZE


def test_check_knows_packs_and_chunked_blobs(reg: Server, versions: dict) -> None:
    """`moorage check --deep --repair` finds nothing wrong with chunked blobs and their packs
    (a pack is no blob row's object, yet no orphan), deletes nothing, and both still pull."""
    target, env = cli_target(reg)
    done = run_moorage("check", "--json", "--deep", "--repair", "--grace", "0", *target,
                       env=env, check=False)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert json.loads(done.stdout)["findings"] == []
    for name, (_, data) in versions.items():
        assert sha(pull(reg, f"{NS}/{name}", sha(data))) == sha(data)


def test_gc_after_deleting_one_version_keeps_the_other(reg: Server, versions: dict) -> None:
    base_manifest, base = versions["base"]
    tuned_manifest, tuned = versions["tuned"]
    r = http.delete(manifest_url(reg, f"{NS}/base", base_manifest))
    assert r.status_code == 202, describe(r)
    report = gc(reg, "0s")
    assert report["blobs"] >= 1 and not report["errors"]
    assert sha(pull(reg, f"{NS}/tuned", sha(tuned))) == sha(tuned)
    assert http.head(blob_url(reg, f"{NS}/base", sha(base))).status_code == 404
    assert dedup(reg)["stored"] <= 1.15 * SIZE
    if BACKEND == "fs":
        assert stored_on_disk(reg) <= 1.15 * (SIZE + (1 << 20))
    r = http.delete(manifest_url(reg, f"{NS}/tuned", tuned_manifest))
    assert r.status_code == 202, describe(r)
    report = gc(reg, "0s")
    assert report["chunks"] > 0 and not report["errors"]
    if BACKEND == "fs":
        assert stored_on_disk(reg) < 1 << 20  # every pack went with its last chunk
