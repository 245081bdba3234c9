"""GC benchmarks, in one run:

1. throughput: blobs removed per second on N unreferenced blobs (filesystem mode), measured by
   `moorage gc` against a data dir holding them (rows and 1-byte files written directly);
2. manifest GET p99 latency of a running server while `moorage gc` removes N blobs, vs idle.

    .venv/bin/python benchmarks/gc.py                # 100 000 blobs
    .venv/bin/python benchmarks/gc.py --blobs 20000  # quick

Our bar: >= 1 000 blobs/s, and p99 during GC no more than 2x idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_blobs(data_dir: Path, n: int, offset: int = 0) -> None:
    """n unreferenced blobs, created two hours ago, each a 1-byte file."""
    db = sqlite3.connect(data_dir / "moorage.db", timeout=60)
    old = time.time() - 7200
    rows = []
    for i in range(offset, offset + n):
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


def prepare(data_dir: Path) -> None:
    from moorage.config import Settings
    from moorage.server import prepare as prep

    prep(Settings.from_env(data_dir=data_dir, auth=False))


def run_gc(data_dir: Path) -> tuple[dict, float]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [PY, "-m", "moorage", "gc", "--grace-period", "1h", "--json", "--data-dir",
         str(data_dir)], capture_output=True, text=True, check=True,
        env={**os.environ, "MOORAGE_LOG_FORMAT": "json"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t0


async def load(url: str, seconds: float, concurrency: int) -> list[float]:
    """Manifest GETs on keep-alive connections; latencies in ms."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    headers = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with s.get(url, headers=headers) as r:
                    await r.read()
                    assert r.status == 200, r.status
                latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(int(len(values) * p), len(values) - 1)]


def push_image(base: str) -> str:
    import hashlib

    import requests

    def blob(data: bytes) -> dict:
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        r = requests.post(f"{base}/v2/bench/gc/blobs/uploads/?digest={d}", data=data, timeout=30)
        assert r.status_code == 201, r.text
        return {"mediaType": "application/octet-stream", "digest": d, "size": len(data)}

    cfg = blob(b"{}")
    cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
    layer = blob(os.urandom(1000))
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": cfg, "layers": [layer]}).encode()
    r = requests.put(f"{base}/v2/bench/gc/manifests/latest", data=manifest, timeout=30,
                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 201, r.text
    return f"{base}/v2/bench/gc/manifests/latest"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blobs", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="moorage-gcbench-"))
    result: dict = {"blobs": args.blobs}
    try:
        # 1. throughput, nothing else running
        d1 = root / "throughput"
        prepare(d1)
        seed_blobs(d1, args.blobs)
        report, wall = run_gc(d1)
        assert report["blobs"] == args.blobs, report
        assert not any((d1 / "blobs").rglob("*/*/*")), "files left behind"
        result["throughput_blobs_per_s"] = round(args.blobs / report["seconds"])
        result["gc_seconds"] = report["seconds"]
        result["gc_wall_seconds_incl_startup"] = round(wall, 2)

        # 2. manifest GET p99, idle vs while GC removes the same number of blobs
        d2 = root / "latency"
        prepare(d2)
        port = free_port()
        log = open(root / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
        server = subprocess.Popen(
            [PY, "-m", "moorage", "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
             str(d2), "--no-auth", "--workers", str(args.workers)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MOORAGE_GC_INTERVAL": "0"},
        )
        try:
            import requests

            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    if requests.get(base + "/v2/", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.1)
            url = push_image(base)
            seed_blobs(d2, args.blobs)
            asyncio.run(load(url, 2, args.concurrency))  # warm up
            idle = asyncio.run(load(url, args.idle_seconds, args.concurrency))
            gc_proc = subprocess.Popen(
                [PY, "-m", "moorage", "gc", "--grace-period", "1h", "--json", "--data-dir",
                 str(d2)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )
            time.sleep(0.8)  # interpreter start-up: measure while it collects
            during: list[float] = []

            async def until_done() -> None:
                while gc_proc.poll() is None:
                    during.extend(await load(url, 1.0, args.concurrency))

            asyncio.run(until_done())
            gc_report = json.loads(gc_proc.stdout.read().strip().splitlines()[-1])
            assert gc_report["blobs"] == args.blobs, gc_report
            assert requests.get(url, timeout=5).status_code == 200
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        result.update({
            "idle_requests": len(idle),
            "idle_p50_ms": round(pct(idle, 0.50), 2),
            "idle_p99_ms": round(pct(idle, 0.99), 2),
            "gc_requests": len(during),
            "gc_p50_ms": round(pct(during, 0.50), 2),
            "gc_p99_ms": round(pct(during, 0.99), 2),
            "gc_seconds_under_load": gc_report["seconds"],
        })
        result["p99_ratio_gc_vs_idle"] = round(result["gc_p99_ms"] / result["idle_p99_ms"], 2)
        result["load_during_run"] = os.getloadavg()
        print(json.dumps(result, indent=1))
        ok = result["throughput_blobs_per_s"] >= 1000 and result["p99_ratio_gc_vs_idle"] <= 2
        print("bar met" if ok else "bar NOT met")
        return 0 if ok else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
