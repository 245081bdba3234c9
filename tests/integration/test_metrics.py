"""/metrics of `moorage serve` with two workers: one scrape reports the whole server (every
worker's counters merged), routes are labelled by pattern, per-repository series are cut to the
top N, job and outbox gauges follow the queue, a killed worker's live gauges go with it, and the
exposition parses with prometheus-client's own parser."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from support.http import describe, http
from support.oci import (
    ACCEPT_MANIFESTS,
    make_image,
    new_repo,
    push_blob,
    push_tree,
    start_upload,
)
from support.servers import BACKEND, TEST_DEFAULTS, free_port, log_text, start_local

from moorage.metrics.files import ARCHIVER
from moorage.web.routes import ROUTES

pytestmark = pytest.mark.skipif(BACKEND == "pg-s3-lb", reason="one node's worker processes")

MANIFEST_ROUTE = "/v2/{name}/manifests/{reference}"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(reg) -> Samples:  # type: ignore[no-untyped-def]
    """Every sample of one scrape, keyed by (sample name, labels)."""
    r = http.get(reg.url + "/metrics")
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), describe(r)
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def worker_pids(reg) -> list[int]:  # type: ignore[no-untyped-def]
    """The supervisor's live workers (not the short-lived archiver of a dead one's metrics)."""
    pids = []
    for p in psutil.Process(reg.proc.pid).children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and ARCHIVER not in " ".join(p.cmdline()):
                pids.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


def _owner(reg, conn: HTTPConnection, pids: list[int]) -> int | None:  # type: ignore[no-untyped-def]
    assert conn.sock is not None
    local = conn.sock.getsockname()[1]
    for pid in pids:
        for c in psutil.Process(pid).net_connections(kind="tcp"):
            if c.raddr and c.raddr.port == local and c.laddr.port == reg.port:
                return pid
    return None


def pinned_connections(reg) -> dict[int, HTTPConnection]:  # type: ignore[no-untyped-def]
    """One keep-alive connection accepted by each worker (by pid)."""
    pids = worker_pids(reg)
    assert len(pids) == 2, pids
    pinned: dict[int, HTTPConnection] = {}
    for _ in range(200):
        conn = HTTPConnection("127.0.0.1", reg.port, timeout=30)
        conn.request("GET", "/v2/")
        conn.getresponse().read()
        owner = _owner(reg, conn, pids)
        if owner is not None and owner not in pinned:
            pinned[owner] = conn
            if len(pinned) == 2:
                return pinned
        else:
            conn.close()
    raise AssertionError(f"could not reach both workers: {sorted(pinned)}")


def request(conn: HTTPConnection, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> int:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    response.read()
    return response.status


def per_process_counts(reg, name: str, **labels: str) -> dict[int, float]:  # type: ignore[no-untyped-def]
    """`name`'s value in each worker's own counter file (what the scrape merges)."""
    out: dict[int, float] = {}
    for path in (Path(reg.data_dir) / "metrics").glob("counter_*.db"):
        owner = path.stem.split("_")[1]
        if not owner.isdigit():
            continue  # the archive of exited workers
        pid = int(owner)
        total = 0.0
        for family in MultiProcessCollector.merge([str(path)], accumulate=True):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        out[pid] = total
    return out


@pytest.fixture(scope="module")
def reg(tmp_path_factory) -> Iterator:  # type: ignore[no-untyped-def]
    server = start_local(tmp_path_factory.mktemp("metrics") / "data", "--workers", "2",
                         MOORAGE_METRICS_TOP_REPOSITORIES="3", MOORAGE_METRICS_CACHE_SECONDS="0")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def traffic(reg) -> dict:  # type: ignore[no-untyped-def]
    """Five repositories, one push each, repository i pulled i+1 times, the manifest PUTs and
    GETs alternating between the two workers on pinned connections."""
    conns = pinned_connections(reg)
    pids = sorted(conns)
    repos = [new_repo("metrics") for _ in range(5)]
    served: dict[str, dict[int, int]] = {"PUT": dict.fromkeys(pids, 0),
                                         "GET": dict.fromkeys(pids, 0)}
    turn = 0
    for i, repo in enumerate(repos):
        image = make_image()
        for blob in image.blobs:
            push_blob(reg, repo, blob.data)
        pid = pids[turn % 2]
        turn += 1
        status = request(conns[pid], "PUT", f"/v2/{repo}/manifests/v1", image.body,
                         {"Content-Type": image.media_type})
        assert status == 201
        served["PUT"][pid] += 1
        for _ in range(i + 1):
            pid = pids[turn % 2]
            turn += 1
            assert request(conns[pid], "GET", f"/v2/{repo}/manifests/v1",
                           headers={"Accept": ACCEPT_MANIFESTS}) == 200
            served["GET"][pid] += 1
    for conn in conns.values():
        conn.close()
    return {"repos": repos, "served": served, "pulls": 15, "pushes": 5}


def test_one_scrape_reports_the_requests_of_both_workers(reg, traffic):
    samples = scrape(reg)
    for method, status, expected in (("PUT", "201", traffic["pushes"]),
                                     ("GET", "200", traffic["pulls"])):
        total = value(samples, "moorage_http_requests_total", route=MANIFEST_ROUTE,
                      method=method, status=status)
        assert total == expected, (method, total)
        # Each worker counted its own share, and the one scrape summed them.
        own = per_process_counts(reg, "moorage_http_requests_total", route=MANIFEST_ROUTE,
                                 method=method, status=status)
        for pid, n in traffic["served"][method].items():
            assert n > 0 and own[pid] == n, (method, own, traffic["served"])
    assert value(samples, "moorage_http_request_duration_seconds_count",
                 route=MANIFEST_ROUTE, method="GET") == traffic["pulls"]
    assert sum(series(samples, "moorage_repository_pulls_total").values()) == traffic["pulls"]
    assert sum(series(samples, "moorage_repository_pushes_total").values()) == traffic["pushes"]


def test_route_labels_are_route_table_patterns(reg, traffic):
    missing = new_repo("nosuch")
    assert http.get(f"{reg.url}/v2/{missing}/manifests/latest").status_code == 404
    assert http.get(f"{reg.url}/v2/{missing}/nothing/here").status_code == 404
    samples = scrape(reg)
    routes = {dict(labels)["route"] for labels in series(samples, "moorage_http_requests_total")}
    allowed = {r.path for r in ROUTES} | {"unmatched"}
    assert routes <= allowed, routes - allowed
    assert {MANIFEST_ROUTE, "/v2/{name}/blobs/uploads/", "unmatched"} <= routes, routes
    text = http.get(reg.url + "/metrics").text
    for repo in [*traffic["repos"], missing]:
        assert not any(repo in line for line in text.splitlines()
                       if line.startswith("moorage_http_request")), repo


def test_per_repository_series_keep_the_top_n_and_sum_the_rest(reg, traffic):
    samples = scrape(reg)
    pulls = {dict(labels)["repository"]: v
             for labels, v in series(samples, "moorage_repository_pulls_total").items()}
    repos = traffic["repos"]  # repos[i] was pulled i+1 times; N is 3
    assert pulls == {repos[4]: 5, repos[3]: 4, repos[2]: 3, "other": 3}, pulls
    pushes = series(samples, "moorage_repository_pushes_total")
    assert len(pushes) == 4 and pushes[frozenset({("repository", "other")})] == 2, pushes


def test_registry_gauges_and_blob_bytes(reg, traffic):
    repo = traffic["repos"][0]
    layer = os.urandom(3000)
    digest = push_blob(reg, repo, layer)
    before = scrape(reg)
    r = http.get(f"{reg.url}/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200 and r.content == layer
    after = scrape(reg)
    sent = "moorage_http_bytes_sent_total"
    assert (value(after, sent) or 0) - (value(before, sent) or 0) == len(layer)
    assert (value(after, "moorage_http_bytes_received_total") or 0) >= len(layer)
    assert value(after, "moorage_repositories") == 5
    assert value(after, "moorage_manifests") == 5
    assert value(after, "moorage_database_up") == 1
    assert value(after, "moorage_storage_up") == 1
    assert value(after, "moorage_uploads_in_flight") == 0
    namespaces = series(after, "moorage_namespace_bytes")
    assert namespaces and all(v > 0 for v in namespaces.values()), namespaces
    assert value(after, "moorage_gc_pending_deletions") is not None  # today's GC gauges stay


def test_a_killed_worker_leaves_no_live_gauge_behind(reg, traffic):
    conns = pinned_connections(reg)
    victim = min(conns)
    repo = traffic["repos"][0]
    location, _ = start_upload(reg, repo)
    path = location.removeprefix(reg.url)
    release = threading.Event()

    def body() -> Iterator[bytes]:
        yield b"x" * 1024
        release.wait(60)

    def upload() -> None:
        try:
            conns[victim].request("PATCH", path, body=body(),
                                  headers={"Content-Type": "application/octet-stream"},
                                  encode_chunked=True)
            conns[victim].getresponse().read()
        except OSError:
            pass  # the worker was killed under it

    sender = threading.Thread(target=upload, daemon=True)
    sender.start()
    try:
        wait_for(lambda: value(scrape(reg), "moorage_uploads_in_flight") == 1, 30,
                 "the upload to be in flight")
        pushes_before = value(scrape(reg), "moorage_http_requests_total", route=MANIFEST_ROUTE,
                              method="PUT", status="201")
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: value(scrape(reg), "moorage_uploads_in_flight") == 0, 30,
                 "the dead worker's gauge to vanish")
        assert not list((Path(reg.data_dir) / "metrics").glob(f"gauge_livesum_{victim}.db"))
        # Its counters still count: the totals are what they were.
        assert value(scrape(reg), "moorage_http_requests_total", route=MANIFEST_ROUTE,
                     method="PUT", status="201") == pushes_before == traffic["pushes"]
        wait_for(lambda: len(worker_pids(reg)) == 2, 30, "a replacement worker")
    finally:
        release.set()
        sender.join(10)
        for conn in conns.values():
            conn.close()
    assert "worker exited, restarting" in log_text(reg)


def _answered(samples: Samples) -> tuple[float, float]:
    """(requests counted, request durations observed) of every route but /metrics."""
    counted = sum(v for labels, v in series(samples, "moorage_http_requests_total").items()
                  if dict(labels)["route"] != "/metrics")
    timed = sum(v for labels, v in series(samples, "moorage_http_request_duration_seconds_count")
                .items() if dict(labels)["route"] != "/metrics")
    return counted, timed


def _file_owners(data_dir: Path) -> list[str]:
    return [path.stem.rsplit("_", 1)[1] for path in (data_dir / "metrics").glob("*.db")]


def test_killed_workers_values_move_to_the_archive_and_their_files_go(tmp_path: Path) -> None:
    reg = start_local(tmp_path / "data", "--workers", "2", MOORAGE_METRICS_CACHE_SECONDS="0")
    data_dir = Path(reg.data_dir)
    try:
        for _ in range(5):
            conns = pinned_connections(reg)
            before = _answered(scrape(reg))
            for conn in conns.values():
                for _ in range(3):
                    assert request(conn, "GET", "/v2/") == 200
            for conn in conns.values():
                conn.close()
            victim = min(conns)
            os.kill(victim, signal.SIGKILL)
            gone = str(victim)
            wait_for(lambda: gone not in _file_owners(data_dir), 60,  # noqa: B023
                     "the dead worker's files to go")
            wait_for(lambda: len(worker_pids(reg)) == 2, 60, "a replacement worker")
            # Exactly what both workers answered, the dead one's share included: no reset, and
            # no double count while its values moved into the archive.
            assert _answered(scrape(reg)) == (before[0] + 6, before[1] + 6)
        live = {str(pid) for pid in worker_pids(reg)}
        owners = _file_owners(data_dir)
        assert set(owners) <= live | {"archive"}, owners
        # counter, histogram and in-flight gauge per live worker, one archive per summed type
        assert len(owners) <= 3 * len(live) + 2, sorted(owners)
        assert sorted(o for o in owners if o == "archive") == ["archive", "archive"], owners
    finally:
        reg.stop()


def _jobs(samples: Samples, kind: str, state: str) -> float:
    return value(samples, "moorage_jobs", kind=kind, state=state) or 0


def test_job_gauges_follow_the_queue(tmp_path: Path):
    data = tmp_path / "data"
    reg = start_local(data, "--workers", "2", MOORAGE_JOBS_IN_SERVER="0",
                      MOORAGE_METRICS_CACHE_SECONDS="0")
    env = {**os.environ, **TEST_DEFAULTS}
    worker = None
    try:
        for key in ("a", "b"):
            subprocess.run([sys.executable, "-m", "moorage", "jobs", "enqueue", "quota.recount",
                            "--key", key, "--data-dir", str(data)], check=True, env=env,
                           capture_output=True, timeout=60)
        samples = scrape(reg)
        assert _jobs(samples, "quota.recount", "queued") == 2, series(samples, "moorage_jobs")
        assert (value(samples, "moorage_job_oldest_seconds", kind="quota.recount") or -1) >= 0
        worker = subprocess.Popen([sys.executable, "-m", "moorage", "worker", "--data-dir",
                                   str(data)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        wait_for(lambda: _jobs(scrape(reg), "quota.recount", "queued") == 0, 60,
                 "the worker to run the queued jobs")
        assert value(scrape(reg), "moorage_job_oldest_seconds", kind="quota.recount") is None
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        reg.stop()


def test_a_standalone_worker_serves_its_job_metrics(tmp_path: Path) -> None:
    data = tmp_path / "data"
    reg = start_local(data, MOORAGE_JOBS_IN_SERVER="0")
    env = {**os.environ, **TEST_DEFAULTS, "MOORAGE_TEST_JOBS": "1",
           "MOORAGE_METRICS_CACHE_SECONDS": "0"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    port = free_port()
    worker = None
    try:
        for key, payload in (("ok", "{}"), ("bad", '{"fail": 9}')):
            subprocess.run([sys.executable, "-m", "moorage", "jobs", "enqueue", "test.sleep",
                            "--key", key, "--payload", payload, "--max-attempts", "1",
                            "--data-dir", str(data)], check=True, env=env,
                           capture_output=True, timeout=60)
        worker = subprocess.Popen([sys.executable, "-m", "moorage", "worker", "--data-dir",
                                   str(data), "--metrics-listen", f"127.0.0.1:{port}"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"

        def finished() -> bool:
            try:
                samples = scrape(SimpleNamespace(url=url))
            except OSError:
                return False  # not listening yet
            return sum(series(samples, "moorage_job_runs_total").values()) == 2

        wait_for(finished, 90, "the worker to run both jobs")
        samples = scrape(SimpleNamespace(url=url))
        assert series(samples, "moorage_job_runs_total") == {
            frozenset({("kind", "test.sleep"), ("outcome", "done")}): 1,
            frozenset({("kind", "test.sleep"), ("outcome", "failed")}): 1}
        assert value(samples, "moorage_job_duration_seconds_count", kind="test.sleep") == 2
        assert _jobs(samples, "test.sleep", "failed") == 1
        assert value(samples, "moorage_database_up") == 1
        assert http.get(url + "/v2/").status_code == 404  # only the metrics
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        reg.stop()
    assert worker.returncode == 0


def test_outbox_lag_grows_while_delivery_is_held_and_drains_after(tmp_path: Path):
    data = tmp_path / "data"
    reg = start_local(data, "--workers", "2", MOORAGE_EVENTS_DISPATCH_DELAY="3600",
                      MOORAGE_METRICS_CACHE_SECONDS="0")
    try:
        repo = new_repo("outbox")
        push_tree(reg, repo, make_image(), tag="v1")
        first = value(scrape(reg), "moorage_outbox_lag_events", consumer="audit") or 0
        assert first > 0
        push_tree(reg, repo, make_image(), tag="v2")
        second = value(scrape(reg), "moorage_outbox_lag_events", consumer="audit") or 0
        assert second > first
    finally:
        reg.stop()
    reg = start_local(data, "--workers", "2", MOORAGE_METRICS_CACHE_SECONDS="0")
    try:
        wait_for(lambda: value(scrape(reg), "moorage_outbox_lag_events", consumer="audit") == 0,
                 60, "the audit consumer to catch up")
        assert value(scrape(reg), "moorage_outbox_dead_letters", consumer="audit") == 0
    finally:
        reg.stop()

