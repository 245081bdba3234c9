"""Online garbage collection against a running two-worker server, driven by the `moorage gc`
CLI on the server's data dir (as an operator would run it)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from support.http import describe, http
from support.oci import (
    assert_error,
    blob_url,
    make_artifact,
    make_image,
    make_index,
    manifest_url,
    new_repo,
    patch_chunk,
    pull_and_verify,
    push_blob,
    push_manifest,
    push_tree,
    put_manifest,
    random_bytes,
    start_upload,
)

from .helpers import blob_files, count, store_consistency

CLEAN = {"missing_bytes": [], "dangling_refs": []}


def test_gc_removes_unreferenced_content_and_keeps_every_referenced_byte(lc):
    reg, cli = lc
    repo = new_repo("gc")
    a = make_image(2)
    push_tree(reg, repo, a, tag="a")
    b = make_image(1, layer_blobs=[a.blobs[1]])  # shares a layer with a
    push_tree(reg, repo, b, tag="b")
    loose = push_blob(reg, repo, random_bytes(1000))
    assert http.delete(manifest_url(reg, repo, "b")).status_code == 202

    dry = cli.gc("0", "--dry-run")
    assert (dry["manifests"], dry["blobs"]) == (1, 2), dry  # b, b's config, the loose blob
    assert http.head(blob_url(reg, repo, loose)).status_code == 200  # a dry run deletes nothing

    report = cli.gc("0")
    assert (report["manifests"], report["blobs"]) == (1, 2), report
    assert report["blob_bytes"] == 1000 + len(b.blobs[0].data)
    assert http.head(blob_url(reg, repo, loose)).status_code == 404
    assert http.get(manifest_url(reg, repo, b.digest)).status_code == 404
    pull_and_verify(reg, repo, "a")
    assert store_consistency(reg.data_dir) == CLEAN
    assert len(blob_files(reg.data_dir)) == 3  # a's config and two layers
    again = cli.gc("0")
    assert (again["manifests"], again["blobs"]) == (0, 0), again


def test_blob_referenced_by_a_surviving_manifest_in_another_repository_is_kept(lc):
    reg, cli = lc
    r1, r2 = new_repo("gc1"), new_repo("gc2")
    shared = make_image(1)
    push_tree(reg, r1, shared, tag="v1")
    other = make_image(1, layer_blobs=[shared.blobs[1]])
    push_tree(reg, r2, other, tag="v1")
    assert http.delete(manifest_url(reg, r2, other.digest)).status_code == 202
    cli.gc("0")
    pull_and_verify(reg, r1, "v1")
    # r2's link to the shared layer went with r2's manifest: scoping holds after GC.
    assert http.head(blob_url(reg, r2, shared.blobs[1].digest)).status_code == 404
    assert store_consistency(reg.data_dir) == CLEAN


def test_manifest_referenced_by_a_surviving_index_is_kept(lc):
    reg, cli = lc
    repo = new_repo("gcidx")
    children = [make_image(1), make_image(1)]
    index = make_index(children)
    push_tree(reg, repo, index, tag="multi")  # children pushed by digest, untagged
    report = cli.gc("0")
    assert report["manifests"] == 0, report
    pull_and_verify(reg, repo, "multi")
    assert http.delete(manifest_url(reg, repo, "multi")).status_code == 202
    report = cli.gc("0")
    assert report["manifests"] == 3 and report["blobs"] == 4, report
    assert store_consistency(reg.data_dir) == CLEAN


def test_referrers_follow_their_subject(lc):
    reg, cli = lc
    repo = new_repo("gcref")
    image = make_image(1)
    push_tree(reg, repo, image, tag="v1")
    signature = make_artifact(subject=image)
    push_tree(reg, repo, signature)  # untagged, reachable through its subject
    assert cli.gc("0")["manifests"] == 0
    assert http.get(manifest_url(reg, repo, signature.digest)).status_code == 200
    assert http.delete(manifest_url(reg, repo, "v1")).status_code == 202
    report = cli.gc("0")
    assert report["manifests"] == 2, report
    assert http.get(manifest_url(reg, repo, signature.digest)).status_code == 404


def test_uploaded_blob_survives_gc_until_its_manifest_arrives(lc):
    """The race: a client uploads a blob, GC runs, then the client pushes the manifest."""
    reg, cli = lc
    repo = new_repo("gcrace")
    image = make_image(2)
    for b in image.blobs:
        push_blob(reg, repo, b.data)
    report = cli.gc("30m")  # the blobs are fresh: within the grace period
    assert report["blobs"] == 0, report
    push_manifest(reg, repo, image.body, image.media_type, ref="v1")
    pull_and_verify(reg, repo, "v1")
    assert cli.gc("0")["blobs"] == 0  # now referenced: kept whatever the grace


def test_with_zero_grace_a_manifest_whose_blobs_were_collected_is_refused_cleanly(lc):
    reg, cli = lc
    repo = new_repo("gczero")
    image = make_image(1)
    for b in image.blobs:
        push_blob(reg, repo, b.data)
    assert cli.gc("0")["blobs"] == 2
    r = put_manifest(reg, repo, "v1", image.body, image.media_type)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    push_tree(reg, repo, image, tag="v1")  # pushing again works
    pull_and_verify(reg, repo, "v1")


def test_stale_uploads_expire_and_free_their_storage(lc):
    reg, cli = lc
    repo = new_repo("gcup")
    loc, _ = start_upload(reg, repo)
    assert patch_chunk(loc, random_bytes(4096), 0).status_code == 202
    assert len(list((reg.data_dir / "uploads").iterdir())) == 1
    assert cli.json("gc", "--grace-period", "0", "--upload-ttl", "1h")["uploads"] == 0
    report = cli.json("gc", "--grace-period", "0", "--upload-ttl", "0")
    assert report["uploads"] == 1 and report["upload_bytes"] == 4096, report
    assert list((reg.data_dir / "uploads").iterdir()) == []
    assert_error(http.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")


def _fake_blobs(data_dir, n: int) -> None:
    """n unreferenced blobs written straight into a data dir (fast setup for big runs)."""
    db = sqlite3.connect(data_dir / "moorage.db")
    old = time.time() - 7200
    rows = []
    for i in range(n):
        hex_ = f"{i:064x}"
        key = f"blobs/sha256/{hex_[:2]}/{hex_}"
        path = data_dir / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        rows.append((f"sha256:{hex_}", 1, key, old))
    db.executemany("INSERT INTO blobs(digest, size, storage_key, created_at) VALUES (?,?,?,?)",
                   rows)
    db.commit()
    db.close()


def test_restart_in_the_middle_of_a_gc_run_leaves_a_consistent_store(lc):
    reg, cli = lc
    repo = new_repo("gccrash")
    keep = make_image(1)
    push_tree(reg, repo, keep, tag="v1")
    _fake_blobs(reg.data_dir, 12_000)
    cmd = [sys.executable, "-m", "moorage", "gc", "--grace-period", "1h", "--data-dir",
           str(reg.data_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **cli.env, "MOORAGE_LOG_FORMAT": "json"},
                            start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"gc blobs"' in line:  # first batch done: the run is in the middle
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    remaining = count(reg.data_dir, "SELECT count(*) FROM blobs")
    assert 2 < remaining < 12_002, remaining
    assert store_consistency(reg.data_dir) == CLEAN  # every row still has its bytes
    pull_and_verify(reg, repo, "v1")
    report = cli.gc("1h")
    assert report["blobs"] == remaining - 2, report
    assert count(reg.data_dir, "SELECT count(*) FROM pending_deletions") == 0
    assert len(blob_files(reg.data_dir)) == 2  # orphaned bytes of the killed run are gone too
    pull_and_verify(reg, repo, "v1")


def test_server_runs_gc_on_a_schedule_and_reports_it(make_registry):
    reg, _ = make_registry(MOORAGE_GC_INTERVAL="1", MOORAGE_GC_GRACE_PERIOD="0")
    repo = new_repo("gcsched")
    loose = push_blob(reg, repo, random_bytes(2000))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and http.head(blob_url(reg, repo, loose)).status_code == 200:
        time.sleep(0.3)
    assert http.head(blob_url(reg, repo, loose)).status_code == 404
    # The link goes before the run ends (it still deletes storage): wait for it to be recorded.
    while True:
        metrics = http.get(reg.url + "/metrics")
        assert metrics.status_code == 200, describe(metrics)
        if "moorage_gc_last_run_removed" in metrics.text or time.monotonic() > deadline + 20:
            break
        time.sleep(0.3)
    assert "moorage_gc_runs_total" in metrics.text
    assert 'moorage_gc_last_run_removed{kind="blobs"}' in metrics.text
    log = reg.log_path.read_text()
    assert "gc finished" in log
