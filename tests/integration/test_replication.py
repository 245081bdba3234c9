"""Replication between two Moorage instances on loopback: the source pushes to (or pulls from)
the target through a TCP relay of the tests (integration/test_upstream_client.py) that counts
the bytes it carries and cuts connections."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from support.http import add_query
from support.oci import (
    ACCEPT_MANIFESTS,
    OCI_CONFIG,
    OCI_MANIFEST,
    Blob,
    blob_url,
    digest_of,
    make_artifact,
    make_image,
    make_index,
    manifest_url,
    new_repo,
    push_blob,
    push_manifest,
    push_tree,
    referrers,
    start_upload,
)
from support.servers import BACKEND, RegistryProcess, Server, run_moorage, start_registry

from integration.test_upstream_client import Relay

# Two single servers of their own, managed with the CLI on their data dirs: not a cluster.
pytestmark = pytest.mark.skipif(BACKEND == "pg-s3-lb", reason="two single-node registries")

CHUNK = 1024 * 1024


class RelayThread:
    """A Relay on an event loop of its own thread, for servers to talk through."""

    def __init__(self, port: int) -> None:
        self.relay = Relay(port)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.relay.__aenter__(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.relay.__aexit__(None, None, None),
                                         self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@dataclass
class World:
    source: Server
    target: Server
    relay: Relay


def _admin(server: Server, *args: str) -> str:
    """`moorage ARGS` on the server's own registry."""
    node: Any = server
    return run_moorage(*args, "--data-dir", str(node.data_dir), *node.extra_args,
                       env=node.env).stdout


def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (got := check()):
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out: {what}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    target = start_registry(tmp_path_factory.mktemp("target"))
    relay = RelayThread(target.port)
    source = start_registry(
        tmp_path_factory.mktemp("source"),
        MOORAGE_JOB_POLL_INTERVAL="0.2", MOORAGE_JOB_BACKOFF_BASE="0.5",
        MOORAGE_JOB_BACKOFF_MAX="2", MOORAGE_REPLICATION_CHUNK_SIZE=str(CHUNK),
        MOORAGE_REPLICATION_RETRIES="0")
    try:
        _admin(source, "upstream", "add", "target", relay.relay.url)
        _admin(source, "upstream", "add", "origin", target.url)
        yield World(source, target, relay.relay)
    finally:
        source.stop()
        relay.stop()
        target.stop()


def _status(world: World, rule: str) -> dict[str, Any]:
    return json.loads(_admin(world.source, "replication", "status", rule, "--json"))


def _run_to_the_end(world: World, rule: str, timeout: float = 90) -> dict[str, Any]:
    """`moorage replication run RULE`, then its run once done (failing on a failed run)."""
    job = json.loads(_admin(world.source, "replication", "run", rule, "--json"))["job"]

    def finished() -> dict[str, Any] | None:
        st = _status(world, rule)
        last = st["last_run"]
        if st["active_job"] is None and last is not None and last["job_id"] == job:
            return last
        return None

    last = _wait(finished, timeout, f"the run of {rule}")
    assert last["state"] == "done", last
    return last


def _digest_at(server: Server, repo: str, ref: str) -> str | None:
    resp = requests.head(manifest_url(server, repo, ref),
                         headers={"Accept": ACCEPT_MANIFESTS}, timeout=10)
    return resp.headers["Docker-Content-Digest"] if resp.status_code == 200 else None


def test_push_to_copies_an_image_with_its_referrer(world: World) -> None:
    repo = new_repo("rp")
    image = make_image(layers=2)
    push_tree(world.source, repo, image, tag="v1")
    signature = make_artifact(subject=image)
    push_tree(world.source, repo, signature)
    _admin(world.source, "replication", "add", "copy-one", "--push-to", "target",
           "--repos", repo)

    last = _run_to_the_end(world, "copy-one")

    assert _digest_at(world.target, repo, "v1") == image.digest
    for blob in image.blobs + signature.blobs:
        got = requests.get(blob_url(world.target, repo, blob.digest), timeout=10)
        assert got.status_code == 200 and got.content == blob.data
    found = referrers(world.target, repo, image.digest).json()["manifests"]
    assert [d["digest"] for d in found] == [signature.digest]
    assert (last["manifests"], last["blobs"]) == (2, len(image.blobs + signature.blobs))
    # a second run finds everything there: nothing is sent again
    again = _run_to_the_end(world, "copy-one")
    assert (again["blobs"], again["bytes"]) == (0, 0)


def test_an_index_keeps_its_children(world: World) -> None:
    repo = new_repo("idx")
    index = make_index([make_image(), make_image()])
    push_tree(world.source, repo, index, tag="multi")
    _admin(world.source, "replication", "add", "multi", "--push-to", "target", "--repos", repo)

    _run_to_the_end(world, "multi")

    assert _digest_at(world.target, repo, "multi") == index.digest
    for child in index.children:
        assert _digest_at(world.target, repo, child.digest) == child.digest
        for blob in child.blobs:
            assert requests.get(blob_url(world.target, repo, blob.digest),
                                timeout=10).content == blob.data


def test_delete_mirrors_removes_the_tags_deleted_here(world: World) -> None:
    repo = new_repo("dm")
    kept, dropped = make_image(), make_image()
    push_tree(world.source, repo, kept, tag="kept")
    push_tree(world.source, repo, dropped, tag="dropped")
    _admin(world.source, "replication", "add", "exact", "--push-to", "target", "--repos", repo,
           "--delete-mirrors")
    _run_to_the_end(world, "exact")
    assert _digest_at(world.target, repo, "dropped") == dropped.digest
    assert requests.delete(manifest_url(world.source, repo, "dropped"),
                           timeout=10).status_code == 202

    last = _run_to_the_end(world, "exact")

    assert last["deleted"] == 1
    assert _digest_at(world.target, repo, "dropped") is None
    assert _digest_at(world.target, repo, "kept") == kept.digest


def test_a_filtered_rule_copies_only_matching_tags(world: World) -> None:
    repo, other = new_repo("flt"), new_repo("nomatch")
    release, nightly = make_image(), make_image()
    push_tree(world.source, repo, release, tag="v2.0")
    push_tree(world.source, repo, nightly, tag="nightly")
    push_tree(world.source, other, make_image(), tag="v1")
    _admin(world.source, "replication", "add", "releases", "--push-to", "target",
           "--repos", "flt/*", "--tags", "v*")

    _run_to_the_end(world, "releases")

    assert _digest_at(world.target, repo, "v2.0") == release.digest
    assert _digest_at(world.target, repo, "nightly") is None
    assert _digest_at(world.target, repo, nightly.digest) is None
    assert _digest_at(world.target, other, "v1") is None


def test_a_cut_connection_resumes_from_the_acknowledged_offset(world: World) -> None:
    repo = new_repo("cut")
    layer = Blob(os.urandom(4 * CHUNK + 123), "application/octet-stream")
    image = make_image(layer_blobs=[layer])
    push_tree(world.source, repo, image, tag="big")
    _admin(world.source, "replication", "add", "cutter", "--push-to", "target",
           "--repos", repo)
    relay = world.relay
    start = len(relay.sent)
    # a connection is cut once it carried 1.5 chunks: with blobs going in parallel the pool
    # may spread one blob's PATCHes over its connections
    relay.cut_upload_after, relay.upload_cuts = int(1.5 * CHUNK), 1

    last = _run_to_the_end(world, "cutter")

    assert relay.upload_cuts == 0  # the relay did cut the push
    assert len(last["failures"]) == 1 and "UNAVAILABLE" in last["failures"][0]["error"]
    sent = bytes(relay.sent[start:])
    # the retry asked the upload where it stood and went on in the same session
    path = f"/v2/{repo}/blobs/uploads/".encode()
    assert sent.count(b"POST " + path) == len(image.blobs)
    assert sent.count(b"GET " + path) == 1
    assert len(sent) < len(layer.data) + CHUNK  # acknowledged bytes were not sent again
    got = requests.get(blob_url(world.target, repo, layer.digest), timeout=30)
    assert got.content == layer.data
    assert _digest_at(world.target, repo, "big") == image.digest


def test_pull_from_mirrors_an_upstream_tag(world: World) -> None:
    repo = new_repo("pl")
    image = make_image(layers=2)
    push_tree(world.target, repo, image, tag="v1")
    signature = make_artifact(subject=image)
    push_tree(world.target, repo, signature)
    push_tree(world.target, repo, make_image(), tag="dev")
    _admin(world.source, "replication", "add", "mirror", "--pull-from", "origin",
           "--repos", repo, "--tags", "v*")

    last = _run_to_the_end(world, "mirror")

    assert _digest_at(world.source, repo, "v1") == image.digest
    assert _digest_at(world.source, repo, "dev") is None
    for blob in image.blobs:
        assert requests.get(blob_url(world.source, repo, blob.digest),
                            timeout=10).content == blob.data
    found = referrers(world.source, repo, image.digest).json()["manifests"]
    assert [d["digest"] for d in found] == [signature.digest]
    assert last["manifests"] == 2


def test_on_push_replicates_a_new_push(world: World) -> None:
    prefix = new_repo("op").split("/")[0]
    _admin(world.source, "replication", "add", "live", "--push-to", "target",
           "--repos", f"{prefix}/**", "--on-push")
    repo = f"{prefix}/team/app"
    image = make_image()
    push_tree(world.source, repo, image, tag="v1")

    _wait(lambda: _digest_at(world.target, repo, "v1") == image.digest, 60,
          "the pushed tag at the target")
    history = json.loads(_admin(world.source, "replication", "history", "live", "--json"))
    assert [r["trigger"] for r in history["runs"]] == [f"push {repo}:v1"]

    signature = make_artifact(subject=image)  # pushed by digest: it follows its subject
    push_tree(world.source, repo, signature)
    _wait(lambda: [d["digest"] for d in referrers(world.target, repo, image.digest)
                   .json()["manifests"]] == [signature.digest], 60, "the referrer at the target")


def test_a_platform_filter_copies_the_chosen_children_not_the_index(world: World) -> None:
    repo = new_repo("plat")
    amd64, arm64 = make_image(), make_image()
    index = make_index([amd64, arm64])  # linux/amd64, linux/arm64
    push_tree(world.source, repo, index, tag="multi")
    _admin(world.source, "replication", "add", "amd-only", "--push-to", "target",
           "--repos", repo, "--platform", "linux/amd64")

    last = _run_to_the_end(world, "amd-only")

    # the index names both children: it is not copied, the tag names the one chosen child
    assert _digest_at(world.target, repo, index.digest) is None
    assert _digest_at(world.target, repo, "multi") == amd64.digest
    assert _digest_at(world.target, repo, arm64.digest) is None
    for blob in arm64.blobs:
        assert requests.head(blob_url(world.target, repo, blob.digest),
                             timeout=10).status_code == 404
    assert len(last["notes"]) == 1 and "--platform keeps 1 of its children: linux/amd64" \
        in last["notes"][0]

    _admin(world.source, "replication", "add", "both", "--push-to", "target",
           "--repos", repo, "--platform", "linux/amd64,linux/arm64", "--tags", "multi")
    whole = _run_to_the_end(world, "both")
    assert _digest_at(world.target, repo, "multi") == index.digest  # every child chosen
    assert whole["notes"] == []


def test_an_artifact_type_filter_keeps_only_those_referrers(world: World) -> None:
    repo = new_repo("atype")
    image = make_image()
    push_tree(world.source, repo, image, tag="v1")
    sbom = make_artifact("application/vnd.example.sbom", subject=image)
    signature = make_artifact("application/vnd.example.signature", subject=image)
    push_tree(world.source, repo, sbom)
    push_tree(world.source, repo, signature)
    push_tree(world.source, repo, make_artifact("application/vnd.example.sbom"), tag="lone")
    _admin(world.source, "replication", "add", "sboms", "--push-to", "target", "--repos", repo,
           "--artifact-type", "application/vnd.oci.image.config.v1+json,*/vnd.example.sbom")

    _run_to_the_end(world, "sboms")

    assert _digest_at(world.target, repo, "v1") == image.digest
    found = referrers(world.target, repo, image.digest).json()["manifests"]
    assert [d["digest"] for d in found] == [sbom.digest]
    assert _digest_at(world.target, repo, "lone") is not None  # a tagged artifact of the type
    assert _digest_at(world.target, repo, signature.digest) is None


def test_blobs_go_in_parallel_under_the_bandwidth_cap(world: World) -> None:
    repo = new_repo("bw")
    layers = [Blob(os.urandom(CHUNK + CHUNK // 2), "application/octet-stream")
              for _ in range(3)]
    image = make_image(layer_blobs=layers)
    push_tree(world.source, repo, image, tag="v1")
    _admin(world.source, "replication", "add", "capped", "--push-to", "target",
           "--repos", repo, "--bandwidth", "1MiB/s")
    start = len(world.relay.sent)

    last = _run_to_the_end(world, "capped")

    assert _digest_at(world.target, repo, "v1") == image.digest
    # 4.5 MiB at 1 MiB/s, a second's worth as the first burst: at least 3.5 s
    took = (datetime.fromisoformat(last["finished_at"])
            - datetime.fromisoformat(last["started_at"])).total_seconds()
    assert took >= 3.4
    sent = bytes(world.relay.sent[start:])
    first_put = min(sent.index(f"digest={b.digest}".encode()) for b in layers)
    posts = sent[:first_put].count(f"POST /v2/{repo}/blobs/uploads/".encode())
    assert posts >= 3  # every layer's upload had begun before the first one ended


def test_runs_are_audited_and_measured(world: World) -> None:
    repo = new_repo("aud")
    push_tree(world.source, repo, make_image(), tag="v1")
    _admin(world.source, "replication", "add", "audited", "--push-to", "target",
           "--repos", repo)
    _run_to_the_end(world, "audited")

    def logged() -> list[dict[str, Any]]:
        lines = _admin(world.source, "audit", "--action", "replication.run", "--jsonl")
        rows = [json.loads(line) for line in lines.splitlines() if line.strip()]
        return [r for r in rows if (r.get("detail") or {}).get("rule") == "audited"]

    rows = _wait(logged, 30, "the run in the audit log")
    assert [r["outcome"] for r in rows] == ["success"]
    assert rows[0]["actor"] == "replication:audited"
    assert rows[0]["detail"]["counts"]["manifests"] == 1

    text = requests.get(world.source.url + "/metrics", timeout=30).text

    def sample(pattern: str) -> str | None:
        found = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
        return found.group(1) if found else None

    assert sample(r'moorage_replication_runs_total\{outcome="done",rule="audited"\}') == "1.0"
    lag = sample(r'moorage_replication_lag_seconds\{rule="audited"\}')
    assert lag is not None and 0 <= float(lag) < 600
    moved = sample(r'moorage_replication_bytes_total\{rule="audited"\}')
    assert moved is not None and float(moved) > 0


BIG = int(os.environ.get("MOORAGE_TEST_RESTART_BLOB_MIB", "300")) * CHUNK


def _big_layer(size: int) -> tuple[Callable[[], Iterator[bytes]], str]:
    """A blob of `size` bytes made on the fly (each MiB differs), and its digest."""
    seed = os.urandom(CHUNK)

    def chunks() -> Iterator[bytes]:
        for i in range(0, size, CHUNK):
            yield (i.to_bytes(8, "big") + seed[8:])[:min(CHUNK, size - i)]

    hasher = hashlib.sha256()
    for chunk in chunks():
        hasher.update(chunk)
    return chunks, f"sha256:{hasher.hexdigest()}"


def test_a_restart_mid_transfer_resumes_from_the_acknowledged_offset(
        world: World, tmp_path: Path) -> None:
    source = start_registry(
        tmp_path / "source", MOORAGE_JOB_POLL_INTERVAL="0.2", MOORAGE_JOB_BACKOFF_BASE="0.5",
        MOORAGE_JOB_BACKOFF_MAX="2", MOORAGE_JOB_LEASE_SECONDS="3",
        MOORAGE_REPLICATION_CHUNK_SIZE=str(4 * CHUNK), MOORAGE_REPLICATION_RETRIES="0")
    assert isinstance(source, RegistryProcess)
    try:
        repo = new_repo("restart")
        chunks, digest = _big_layer(BIG)
        location, _ = start_upload(source, repo)
        put = requests.put(add_query(location, {"digest": digest}), data=chunks(),
                           headers={"Content-Type": "application/octet-stream"}, timeout=600)
        assert put.status_code == 201, put.text
        config = Blob(b"{}", OCI_CONFIG)
        push_blob(source, repo, config.data)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
            "layers": [{"mediaType": "application/octet-stream", "digest": digest,
                        "size": BIG}]}).encode()
        push_manifest(source, repo, manifest, OCI_MANIFEST, ref="big")
        _admin(source, "upstream", "add", "target", world.relay.url)
        # slow enough to be killed mid-way on any box; fast enough to finish in minutes
        _admin(source, "replication", "add", "restarted", "--push-to", "target",
               "--repos", repo, "--bandwidth", "40MiB/s")
        relay, start = world.relay, len(world.relay.sent)
        job = json.loads(_admin(source, "replication", "run", "restarted", "--json"))["job"]

        _wait(lambda: len(relay.sent) - start > BIG // 3, 300, "a third of the blob sent")
        source.kill()  # SIGKILL by PID, mid-transfer
        source.start()

        def finished() -> dict[str, Any] | None:
            st = json.loads(_admin(source, "replication", "status", "restarted", "--json"))
            last = st["last_run"]
            done = st["active_job"] is None and last and last["job_id"] == job
            return last if done else None

        last = _wait(finished, 600, "the resumed run")
        assert last["state"] == "done", last
        head = requests.head(blob_url(world.target, repo, digest), timeout=30)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == BIG
        assert _digest_at(world.target, repo, "big") == digest_of(manifest)
        received = len(relay.sent) - start
        assert received < 1.3 * BIG, (received, BIG)  # resumed, not sent again
    finally:
        del world.relay.sent[:]  # hundreds of MiB the other tests do not look at
        source.stop()
