"""Domain events: a push's events commit with the push, so a kill -9 before the dispatcher ran
loses none (the restarted server delivers them to the audit log); pulls batched in memory are
written on a graceful stop; `moorage events tail` shows them.

The database is read directly (SQLite file of the embedded default), never through the audit
API, which would itself catch the audit consumer up."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.oci import get_manifest, make_image, new_repo, push_tree
from support.servers import BACKEND, start_registry

pytestmark = pytest.mark.skipif(BACKEND != "fs", reason="reads the embedded SQLite database")


def _rows(data_dir: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(f"file:{data_dir / 'moorage.db'}?mode=ro", uri=True, timeout=30) as db:
        return db.execute(sql, args).fetchall()


def _wait_rows(data_dir: Path, want: int, sql: str, *args: object, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    while True:
        rows = _rows(data_dir, sql, *args)
        if len(rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_kill_9_before_delivery_loses_no_event(tmp_path):
    reg = start_registry(tmp_path, "--workers", "1", MOORAGE_EVENTS_DISPATCH_DELAY="3600")
    try:
        repo, image = new_repo("outbox"), make_image(layers=1)
        digest = push_tree(reg, repo, image, tag="v1")
        reg.kill()  # right after the acknowledgements: the dispatcher has not run yet
        events = _rows(reg.data_dir, "SELECT id, type, digest, tag FROM events "
                       "WHERE repository = ? ORDER BY id", repo)
        types = [t for _, t, _, _ in events]
        assert types.count("BlobPushed") == 2 and "TagMoved" in types, events
        assert types.count("ManifestPushed") == 2, events  # by digest, then by tag
        assert _rows(reg.data_dir, "SELECT id FROM audit_events WHERE repository = ?",
                     repo) == [], "the dispatcher ran before the kill: the test proves nothing"

        reg.env["MOORAGE_EVENTS_DISPATCH_DELAY"] = "0"
        reg.start()
        audit = _wait_rows(reg.data_dir, 4, "SELECT event_id, action, reference FROM "
                           "audit_events WHERE repository = ? ORDER BY event_id", repo)
        assert sorted(a for _, a, _ in audit) == [
            "blob.push", "blob.push", "manifest.push", "manifest.push"], audit
        assert {r for _, a, r in audit if a == "blob.push"} == {b.digest for b in image.blobs}
        assert {r for _, a, r in audit if a == "manifest.push"} == {digest, "v1"}
        pushed = {i for i, t, _, _ in events if t != "TagMoved"}
        assert [i for i, _, _ in audit] == sorted(pushed), (audit, events)
    finally:
        reg.stop()


def test_graceful_stop_writes_batched_pulls_and_delivers_them(tmp_path):
    reg = start_registry(tmp_path, "--workers", "1", MOORAGE_PULL_FLUSH_INTERVAL="3600")
    try:
        repo, image = new_repo("pulls"), make_image(layers=1)
        push_tree(reg, repo, image, tag="v1")
        r = get_manifest(reg, repo, "v1")
        assert r.status_code == 200, r.text
        assert reg.stop(signal.SIGTERM) == 0
        # pull times wait an hour in memory: only the stop can have written this one
        assert _rows(reg.data_dir, "SELECT reference FROM pull_times WHERE repository = ?",
                     repo) == [("v1",)]
        pulls = _rows(reg.data_dir, "SELECT tag, actor, address FROM events "
                      "WHERE repository = ? AND type = 'ManifestPulled'", repo)
        assert pulls == [("v1", None, "127.0.0.1")], pulls
        audit = _rows(reg.data_dir, "SELECT reference FROM audit_events "
                      "WHERE repository = ? AND action = 'manifest.pull'", repo)
        assert audit == [("v1",)], audit
    finally:
        reg.stop()


def test_events_tail_prints_the_push(tmp_path):
    reg = start_registry(tmp_path, "--workers", "1")
    try:
        repo, image = new_repo("tail"), make_image(layers=1)
        digest = push_tree(reg, repo, image, tag="v1")
        env = {**os.environ, "MOORAGE_DATA_DIR": str(reg.data_dir)}
        cmd = [sys.executable, "-m", "moorage", "events", "tail"]
        out = subprocess.run([*cmd, "--json", "-n", "100"], env=env, capture_output=True,
                             text=True, timeout=120, check=True).stdout
        events = [json.loads(line) for line in out.splitlines()]
        mine = [e for e in events if e["repository"] == repo]
        tagged = [e for e in mine if e["type"] == "ManifestPushed" and e["tag"] == "v1"]
        assert len(tagged) == 1 and tagged[0]["digest"] == digest, mine
        assert tagged[0]["payload"]["reference"] == "v1" and tagged[0]["time"].endswith("Z")
        after = tagged[0]["id"]
        moved = subprocess.run([*cmd, "--since-id", str(after - 1)], env=env,
                               capture_output=True, text=True, timeout=120, check=True).stdout
        first, *rest = moved.splitlines()
        assert first.split()[:3][0] == str(after) and "ManifestPushed" in first, moved
        assert any("TagMoved" in line and f"{repo}:v1" in line for line in rest), moved
    finally:
        reg.stop()
