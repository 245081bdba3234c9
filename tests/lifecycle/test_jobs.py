"""The durable job queue, through real processes: `moorage worker`, `moorage jobs`, the server.

The probe is the test-only kind `test.sleep` (registered when MOORAGE_TEST_JOBS=1): it appends
JSON lines `start` / `fail` / `end` with its job id, attempt and the worker's pid to a file.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from .conftest import Cli

# Short leases and quick polling; the server itself runs no jobs (--no-jobs): workers do.
FAST = {"MOORAGE_TEST_JOBS": "1", "MOORAGE_JOB_LEASE_SECONDS": "2",
        "MOORAGE_JOB_POLL_INTERVAL": "0.1", "MOORAGE_UPLOAD_EXPIRY_INTERVAL": "0",
        "MOORAGE_GC_INTERVAL": "0"}


@dataclass
class Worker:
    """A `moorage worker` child process, stopped by its PID."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None

    def start(self) -> Worker:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moorage", "worker", *self.args], stdout=log,
            stderr=subprocess.STDOUT, env={**os.environ, **self.env}, start_new_session=True)
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def workers(tmp_path: Path):  # type: ignore[no-untyped-def]
    """make(args, env) starts a worker; all are killed at the end."""
    started: list[Worker] = []

    def make(args: list[str], env: dict[str, str]) -> Worker:
        w = Worker(args, env, tmp_path / f"worker{len(started)}.log").start()
        started.append(w)
        return w

    yield make
    for w in started:
        w.stop()


def events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(what, timeout: float, message: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s: {message}")


def job_of(cli: Cli, job_id: int) -> dict:
    return next(j for j in cli.json("jobs", "list")["jobs"] if j["id"] == job_id)


def enqueue(cli: Cli, payload: dict, *extra: str) -> dict:
    return cli.json("jobs", "enqueue", "test.sleep", "--payload", json.dumps(payload), *extra)


@pytest.fixture
def registry(make_registry):  # type: ignore[no-untyped-def]
    """A server that runs no jobs itself, and the CLI on its data dir."""
    return make_registry("--no-jobs", **FAST)


def test_killed_worker_s_job_is_finished_by_another(registry, workers, tmp_path):
    reg, cli = registry
    args = ["--data-dir", str(reg.data_dir)]
    pool = [workers(args, FAST), workers(args, FAST)]
    record = tmp_path / "events.jsonl"
    # Long enough that a loaded machine cannot let the victim finish before it is killed.
    job = enqueue(cli, {"seconds": 15, "record": str(record)})
    first = wait_for(lambda: [e for e in events(record) if e["event"] == "start"], 60,
                     "no worker started the job")[0]
    victim = next(w for w in pool if w.pid == first["pid"])
    survivor = next(w for w in pool if w is not victim)
    # Longer than the lease: the heartbeat keeps the job with its worker, nobody else starts it.
    time.sleep(3)
    assert [e["pid"] for e in events(record) if e["event"] == "start"] == [victim.pid]
    os.killpg(victim.pid, signal.SIGKILL)
    killed_at = time.time()
    end = wait_for(lambda: [e for e in events(record) if e["event"] == "end"], 90,
                   "no other worker finished the job")[0]
    assert end["pid"] == survivor.pid
    starts = [e for e in events(record) if e["event"] == "start"]
    assert [(e["pid"], e["attempt"]) for e in starts] == [(victim.pid, 1), (survivor.pid, 2)]
    assert starts[1]["t"] >= killed_at
    finished = wait_for(lambda: job_of(cli, job["id"])["state"] == "done" and
                        job_of(cli, job["id"]), 30, "the job was not marked done")
    assert finished["attempts"] == 2
    assert finished["lease_until"] is None


def test_failing_job_backs_off_then_fails_with_its_last_error(registry, workers, tmp_path):
    reg, cli = registry
    env = {**FAST, "MOORAGE_JOB_BACKOFF_BASE": "0.5", "MOORAGE_JOB_BACKOFF_MAX": "10"}
    workers(["--data-dir", str(reg.data_dir)], env)
    record = tmp_path / "events.jsonl"
    job = enqueue(cli, {"seconds": 0, "fail": 10, "record": str(record)}, "--max-attempts", "3")
    done = wait_for(lambda: job_of(cli, job["id"])["state"] == "failed" and
                    job_of(cli, job["id"]), 90, "the job never reached `failed`")
    assert done["attempts"] == 3
    assert "failing on purpose (attempt 3)" in done["last_error"]
    time.sleep(1.5)  # more than the next backoff would be: no fourth attempt
    log = events(record)
    starts = [e for e in log if e["event"] == "start"]
    fails = [e for e in log if e["event"] == "fail"]
    assert [e["attempt"] for e in starts] == [1, 2, 3]
    # Exponential: the second retry waited at least twice the first one's base delay.
    assert starts[1]["t"] - fails[0]["t"] >= 0.5
    assert starts[2]["t"] - fails[1]["t"] >= 1.0


def test_unique_key_cancel_and_retry_from_the_cli(registry, workers, tmp_path):
    reg, cli = registry
    record = tmp_path / "events.jsonl"
    payload = {"seconds": 0, "record": str(record)}
    later = enqueue(cli, payload, "--key", "only-one", "--delay", "3600")
    again = enqueue(cli, payload, "--key", "only-one")
    assert (again["id"], again["created"], later["created"]) == (later["id"], False, True)
    not_running = cli.run("jobs", "retry", str(later["id"]), check=False)
    assert not_running.returncode == 1
    assert "only failed or cancelled jobs can be retried" in not_running.stderr
    assert cli.json("jobs", "cancel", str(later["id"]))["state"] == "cancelled"
    # The key is free once its job is cancelled.
    other = enqueue(cli, payload, "--key", "only-one", "--delay", "3600")
    assert other["created"] is True and other["id"] != later["id"]
    taken = cli.run("jobs", "retry", str(later["id"]), check=False)
    assert taken.returncode == 1 and "already queued or running" in taken.stderr
    cli.json("jobs", "cancel", str(other["id"]))
    assert cli.json("jobs", "retry", str(later["id"]))["state"] == "queued"
    workers(["--data-dir", str(reg.data_dir)], FAST)
    wait_for(lambda: job_of(cli, later["id"])["state"] == "done", 60, "retried job never ran")
    assert [e["job"] for e in events(record) if e["event"] == "end"] == [later["id"]]
    listed = cli.json("jobs", "list", "--state", "cancelled")["jobs"]
    assert [j["id"] for j in listed] == [other["id"]]
    assert listed[0]["finished_at"].endswith("Z")  # RFC 3339


def test_sigterm_gives_the_running_job_back(registry, workers, tmp_path):
    reg, cli = registry
    env = {**FAST, "MOORAGE_SHUTDOWN_TIMEOUT": "0.5"}
    w = workers(["--data-dir", str(reg.data_dir)], env)
    record = tmp_path / "events.jsonl"
    job = enqueue(cli, {"seconds": 60, "record": str(record)})
    wait_for(lambda: events(record), 60, "the job did not start")
    w.signal(signal.SIGTERM)
    assert w.proc is not None and w.proc.wait(30) == 0
    back = job_of(cli, job["id"])
    assert (back["state"], back["attempts"], back["leased_by"]) == ("queued", 0, None)


def test_api_lists_jobs_for_server_admins_only(make_registry):
    reg, cli = make_registry("--no-jobs", auth=True, MOORAGE_ADMIN_PASSWORD="jobs-admin-pw-1",
                             **FAST)
    job = enqueue(cli, {"seconds": 0}, "--delay", "3600")
    assert requests.get(reg.url + "/api/v1/jobs", timeout=30).status_code == 401
    r = requests.get(reg.url + "/api/v1/jobs?state=queued&kind=test.sleep", timeout=30,
                     auth=("admin", "jobs-admin-pw-1"))
    assert r.status_code == 200, r.text
    listed = r.json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert listed[0]["run_at"].endswith("Z") and listed[0]["state"] == "queued"
    bad = requests.get(reg.url + "/api/v1/jobs?state=sleeping", timeout=30,
                       auth=("admin", "jobs-admin-pw-1"))
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_server_workers_run_jobs_unless_no_jobs(make_registry, tmp_path):
    reg, cli = make_registry(**FAST)
    record = tmp_path / "events.jsonl"
    job = enqueue(cli, {"seconds": 0, "record": str(record)})
    wait_for(lambda: job_of(cli, job["id"])["state"] == "done", 60, "the server ran no job")
    assert events(record)[0]["pid"] != reg.proc.pid  # one of its worker processes
    _lean, lean_cli = make_registry("--no-jobs", **FAST)
    idle = enqueue(lean_cli, {"seconds": 0})
    time.sleep(2)
    assert job_of(lean_cli, idle["id"])["state"] == "queued"


# -- PostgreSQL: two workers never run the same unique job at once ------------------------------

@pytest.fixture(scope="module")
def services():  # type: ignore[no-untyped-def]
    from support.backends import services_or_skip

    return services_or_skip()


def test_two_workers_on_postgresql_never_run_one_unique_job_at_once(services, workers, tmp_path,
                                                                  monkeypatch):
    from support.backends import migrate

    from moorage.bootstrap import open_existing
    from moorage.config import Settings

    monkeypatch.setenv("MOORAGE_TEST_JOBS", "1")  # this process enqueues the test kind
    url = services.pg.create_database()
    migrate(url)
    env = {**FAST, "MOORAGE_JOB_CONCURRENCY": "2"}
    args = ["--database", url, "--data-dir", str(tmp_path / "data")]
    pool = [workers(args, env), workers(args, env)]
    registry = open_existing(Settings(database_url=url, data_dir=tmp_path / "data"))
    queue = registry.jobs
    record = tmp_path / "events.jsonl"
    try:
        deadline = time.monotonic() + 15
        i = 0
        while time.monotonic() < deadline:
            # Both workers keep asking for the same key; only one job of it may exist at once.
            queue.enqueue("test.sleep", {"seconds": 0.3, "record": str(record)}, "same")
            if i % 20 == 0:  # now and then a job of its own key, so both workers are busy
                queue.enqueue("test.sleep", {"seconds": 0.6, "record": str(record)}, f"own-{i}")
            i += 1
            time.sleep(0.02)
        wait_for(lambda: not queue.list(state="queued,running", kind="test.sleep"), 60,
                 "jobs left unfinished")
    finally:
        registry.close()
    log = events(record)
    spans: dict[int, dict] = {}
    for e in log:
        spans.setdefault(e["job"], {"key": e["key"], "pid": e["pid"]})[e["event"]] = e["t"]
    same = sorted((s for s in spans.values() if s["key"] == "same"), key=lambda s: s["start"])
    assert len(same) >= 5, f"only {len(same)} runs of the unique job"
    assert all("end" in s for s in same)
    for earlier, later in itertools.pairwise(same):
        assert later["start"] >= earlier["end"], f"overlap: {earlier} and {later}"
    # The workers did run in parallel (distinct keys overlap, on both workers).
    assert {s["pid"] for s in spans.values()} == {w.pid for w in pool}
    everything = sorted(spans.values(), key=lambda s: s["start"])
    assert any(b["start"] < a["end"] for a, b in itertools.pairwise(everything))
