"""Post-push processors through a real server: the outbox's `post-push` consumer queues one job
per manifest for the test-only processor `test.record` (MOORAGE_TEST_PROCESSOR=<file>, one JSON
line per run), which the server's job runner runs."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from support.oci import make_image, new_repo, push_tree

# Quick polling and retries; no other background work.
FAST = {"MOORAGE_JOB_POLL_INTERVAL": "0.1", "MOORAGE_JOB_BACKOFF_BASE": "0.2",
        "MOORAGE_JOB_BACKOFF_MAX": "0.5", "MOORAGE_UPLOAD_EXPIRY_INTERVAL": "0",
        "MOORAGE_EVENTS_POLL_INTERVAL": "0.1"}
KIND = "post-push.test.record"


def runs(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(what, timeout: float, message: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s: {message}")


def processor_jobs(cli) -> list[dict]:  # type: ignore[no-untyped-def]
    return cli.json("jobs", "list", "--kind", KIND)["jobs"]


def sql(data_dir: Path, query: str, *args: object) -> list[tuple]:
    with sqlite3.connect(data_dir / "moorage.db", timeout=30) as db:
        return db.execute(query, args).fetchall()


def caught_up(data_dir: Path) -> bool:
    """The post-push cursor has passed every event written so far."""
    (last,), = sql(data_dir, "SELECT coalesce(max(id), 0) FROM events")
    rows = sql(data_dir, "SELECT last_id FROM event_cursors WHERE consumer = 'post-push'")
    return bool(rows) and rows[0][0] >= last


def test_each_manifest_is_processed_once_despite_repeats_and_redelivery(make_registry, tmp_path):
    record = tmp_path / "runs.jsonl"
    reg, cli = make_registry(MOORAGE_TEST_PROCESSOR=str(record), **FAST)
    repo = new_repo("pp")
    a, b = make_image(1), make_image(1)
    digest_a = push_tree(reg, repo, a, tag="a")  # by digest, then by tag: two pushes
    push_tree(reg, repo, a, tag="again")  # the same manifest twice more
    digest_b = push_tree(reg, repo, b, tag="b")
    wait_for(lambda: len([j for j in processor_jobs(cli) if j["state"] == "done"]) == 2, 60,
             "the two processor jobs did not finish")
    wait_for(lambda: caught_up(reg.data_dir), 90, "post-push consumer did not catch up")
    # Redelivery: the consumer's cursor goes back to the start, every push is handed over again.
    sql(reg.data_dir, "UPDATE event_cursors SET last_id = 0 WHERE consumer = 'post-push'")
    wait_for(lambda: caught_up(reg.data_dir), 90, "post-push consumer did not redeliver")
    time.sleep(1.0)  # a job queued by the redelivery would have started by now
    keys = sorted(r["key"] for r in runs(record))
    assert keys == sorted([f"{repo}@{digest_a}", f"{repo}@{digest_b}"])
    jobs = processor_jobs(cli)
    assert sorted(j["unique_key"] for j in jobs) == sorted(
        [f"test.record:{repo}@{digest_a}", f"test.record:{repo}@{digest_b}"])
    assert {j["state"] for j in jobs} == {"done"}


def test_a_processor_that_keeps_failing_ends_failed_with_its_error(make_registry, tmp_path):
    record = tmp_path / "runs.jsonl"
    reg, cli = make_registry(MOORAGE_TEST_PROCESSOR=str(record),
                             MOORAGE_TEST_PROCESSOR_FAIL="100", MOORAGE_JOB_MAX_ATTEMPTS="3",
                             **FAST)
    repo = new_repo("pp")
    digest = push_tree(reg, repo, make_image(1))
    (job,) = wait_for(lambda: [j for j in processor_jobs(cli) if j["state"] == "failed"], 60,
                      "the failing processor's job did not end failed")
    assert job["attempts"] == 3
    assert job["unique_key"] == f"test.record:{repo}@{digest}"
    assert "failing on purpose (run 3" in job["last_error"]
    assert [r["run"] for r in runs(record)] == [1, 2, 3]
    table = cli.run("jobs", "list", "--state", "failed").stdout
    assert KIND in table and "failing on purpose" in table
