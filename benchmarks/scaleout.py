"""Scale-out benchmark: Moorage on PostgreSQL + SeaweedFS (one and two nodes) beside the default
SQLite + filesystem mode, in one run on this machine.

Rows (each mode in turn, never two at once):
  push    monolithic PUT of --size-mib (sendfile from a random file), MB/s
  chunked PATCH chunks of --chunk-mib then an empty PUT, MB/s
  pull    GET following redirects (S3: a 307 to a presigned SeaweedFS URL), MB/s
  proxied pull through the node (MOORAGE_BLOB_REDIRECT=0 node; S3 modes only), MB/s
  manifest GET by tag, --concurrency keep-alive connections for --duration s, req/s
  big     peak RSS of each node's process tree during a --big-gib monolithic push

Two-node rows run two clients at once, one per node, each with its own blob; their bytes are
added up. Every node runs one worker (`--workers 1`) so that one node vs two nodes compares
like with like on a 2-core machine. Results: stdout table and benchmarks/results/scaleout.json.

    .venv/bin/python benchmarks/scaleout.py                      # 1 GiB rows, 10 GiB RSS row
    .venv/bin/python benchmarks/scaleout.py --size-mib 128 --big-gib 1   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import run as bench
from backends import ScaleOutServices, free_port, migrate

MiB, MB = 1 << 20, 1_000_000


class Node:
    """One `moorage serve` process, its process tree sampled for RSS."""

    def __init__(self, root: Path, args: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        self.data = root / f"node-{self.port}"
        self.data.mkdir(parents=True)
        self.log = root / f"node-{self.port}.log"
        cmd = [sys.executable, "-m", "moorage", "serve", "--listen", f"127.0.0.1:{self.port}",
               "--data-dir", str(self.data), "--workers", "1", *args]
        log = open(self.log, "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **env}, start_new_session=True)
        self.peak_rss = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                c = bench.connect(self.url, 2)
                st, _, _ = bench.request(c, "GET", "/readyz")
                c.close()
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node did not start: {self.log.read_text()[-2000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs if p.is_running())
        except psutil.Error:
            return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def push(node: Node, repo: str, path: Path, digest: str, size: int) -> float:
    with open(path, "rb") as f:
        c = bench.connect(node.url)
        try:
            t0 = time.perf_counter()
            st, h, b = bench.request(c, "POST", f"/v2/{repo}/blobs/uploads/")
            bench.expect(st, (202,), "POST", h, b)
            loc = bench.location_path(node.url, h.get("location"), "POST")
            st, h, b = bench.send_file(c, "PUT", bench.with_param(loc, "digest", digest), f, 0,
                                       size, {"Content-Type": "application/octet-stream"})
            bench.expect(st, (201,), "PUT", h, b)
            return time.perf_counter() - t0
        finally:
            c.close()


def push_chunked(nodes: list[Node], repo: str, path: Path, digest: str, size: int,
                 chunk: int) -> float:
    """PATCH chunks round-robin over `nodes` (the upload moves between nodes)."""
    conns = [bench.connect(n.url) for n in nodes]
    with open(path, "rb") as f:
        try:
            t0 = time.perf_counter()
            st, h, b = bench.request(conns[0], "POST", f"/v2/{repo}/blobs/uploads/")
            bench.expect(st, (202,), "POST", h, b)
            loc = bench.location_path(nodes[0].url, h.get("location"), "POST")
            off, i = 0, 0
            while off < size:
                n = min(chunk, size - off)
                st, h, b = bench.send_file(
                    conns[i % len(conns)], "PATCH", loc, f, off, n,
                    {"Content-Type": "application/octet-stream",
                     "Content-Range": f"{off}-{off + n - 1}"})
                bench.expect(st, (202,), "PATCH", h, b)
                off, i = off + n, i + 1
            st, h, b = bench.request(conns[i % len(conns)], "PUT",
                                     bench.with_param(loc, "digest", digest))
            bench.expect(st, (201,), "PUT", h, b)
            return time.perf_counter() - t0
        finally:
            for c in conns:
                c.close()


def pull(node: Node, repo: str, digest: str, size: int) -> float:
    old = bench.BIG_REPO
    bench.BIG_REPO = repo
    try:
        n, dt = bench._get_blob(node.url, digest, lambda _mv: None)
    finally:
        bench.BIG_REPO = old
    if n != size:
        raise RuntimeError(f"pulled {n} of {size} bytes")
    return dt


def parallel(fns) -> list:  # type: ignore[no-untyped-def]
    out: list = [None] * len(fns)

    def go(i: int) -> None:
        out[i] = fns[i]()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def manifest_load(nodes: list[Node], args) -> float:  # type: ignore[no-untyped-def]
    repo, tag = "bench/small", "latest"
    cfg = b"{}"
    c = bench.connect(nodes[0].url)
    try:
        digest = bench.push_blob_bytes(nodes[0].url, repo, cfg)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digest, "size": len(cfg)},
            "layers": []}).encode()
        st, h, b = bench.request(c, "PUT", f"/v2/{repo}/manifests/{tag}", manifest,
                                 {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        bench.expect(st, (201,), "PUT manifest", h, b)
    finally:
        c.close()
    per_node = max(args.concurrency // len(nodes), 1)

    def load(node: Node):  # type: ignore[no-untyped-def]
        def go() -> tuple[int, float]:
            gen = bench._PyLoad("127.0.0.1", node.port, f"/v2/{repo}/manifests/{tag}", "GET",
                                args.duration)
            dt = asyncio.run(gen.run(per_node))
            return len(gen.lat) - gen.errors, dt

        return go

    results = parallel([load(n) for n in nodes])
    return sum(n for n, _ in results) / max(dt for _, dt in results)


def run_mode(name: str, nodes: list[Node], proxy: Node | None, files, args, out: dict) -> None:  # type: ignore[no-untyped-def]
    size = args.size_mib * MiB
    res: dict = {}
    out[name] = res
    bench.log(f"[{name}] push")
    if len(nodes) == 1:
        dt = push(nodes[0], "bench/big", files[0][0], files[0][1], size)
        res["push_MBps"] = size / dt / MB
        bench.log(f"[{name}] chunked")
        dt = push_chunked(nodes, "bench/big", files[2][0], files[2][1], size, args.chunk_mib * MiB)
        res["chunked_MBps"] = size / dt / MB
        bench.log(f"[{name}] pull")
        res["pull_MBps"] = size / pull(nodes[0], "bench/big", files[0][1], size) / MB
        if proxy is not None:
            res["proxied_pull_MBps"] = size / pull(proxy, "bench/big", files[0][1], size) / MB
    else:
        t0 = time.perf_counter()
        parallel([lambda i=i: push(nodes[i], f"bench/big{i}", files[i][0], files[i][1], size)
                  for i in range(2)])
        res["push_MBps"] = 2 * size / (time.perf_counter() - t0) / MB
        bench.log(f"[{name}] chunked (every upload moves between both nodes)")
        t0 = time.perf_counter()
        parallel([lambda i=i: push_chunked(nodes if i == 0 else nodes[::-1], f"bench/c{i}",
                                           files[2 + i][0], files[2 + i][1], size,
                                           args.chunk_mib * MiB) for i in range(2)])
        res["chunked_MBps"] = 2 * size / (time.perf_counter() - t0) / MB
        bench.log(f"[{name}] pull")
        t0 = time.perf_counter()
        parallel([lambda i=i: pull(nodes[i], f"bench/big{i}", files[i][1], size)
                  for i in range(2)])
        res["pull_MBps"] = 2 * size / (time.perf_counter() - t0) / MB
    bench.log(f"[{name}] manifest GET")
    res["manifest_get_rps"] = manifest_load(nodes, args)


def big_push_rss(name: str, nodes: list[Node], path: Path, digest: str, size: int,
                 out: dict) -> None:
    bench.log(f"[{name}] {size / (1 << 30):.0f} GiB push, sampling RSS")
    node = nodes[0]
    node.peak_rss = node.rss()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            node.peak_rss = max(node.peak_rss, node.rss())
            stop.wait(0.1)

    t = threading.Thread(target=sample)
    t.start()
    try:
        dt = push(node, "bench/huge", path, digest, size)
    finally:
        stop.set()
        t.join()
    out[name]["big_push_MBps"] = size / dt / MB
    out[name]["big_push_peak_rss_MiB"] = node.peak_rss / MiB


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--chunk-mib", type=int, default=64)
    p.add_argument("--big-gib", type=int, default=10)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--work-dir", default=None)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="moorage-scaleout-bench-", dir=args.work_dir))
    size = args.size_mib * MiB
    files = []
    for i in range(4):
        path = root / f"blob{i}"
        files.append((path, bench.gen_random_file(path, size)))
    big = root / "huge"
    big_digest = bench.gen_random_file(big, args.big_gib << 30)
    out: dict = {"args": vars(args)}
    services = ScaleOutServices().start()
    try:
        # -- filesystem (the default) ------------------------------------------------------
        fs = [Node(root, [], {})]
        try:
            run_mode("fs-1", fs, None, files, args, out)
            big_push_rss("fs-1", fs, big, big_digest, args.big_gib << 30, out)
        finally:
            for n in fs:
                n.stop()
            shutil.rmtree(fs[0].data, ignore_errors=True)
        # -- PostgreSQL + SeaweedFS ----------------------------------------------------------
        for count in (1, 2):
            url = services.pg.create_database()
            migrate(url)
            a = ["--database", url, "--storage", services.s3.storage_url()]
            env = services.s3.env()
            nodes = [Node(root, a, env) for _ in range(count)]
            proxy = Node(root, a, {**env, "MOORAGE_BLOB_REDIRECT": "0"}) if count == 1 else None
            try:
                run_mode(f"pg-s3-{count}", nodes, proxy, files, args, out)
                if count == 1:
                    big_push_rss("pg-s3-1", nodes, big, big_digest, args.big_gib << 30, out)
            finally:
                for n in [*nodes, *([proxy] if proxy else [])]:
                    n.stop()
    finally:
        services.stop()
        shutil.rmtree(root, ignore_errors=True)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "scaleout.json").write_text(json.dumps(out, indent=2))
    rows = [("push_MBps", "monolithic push MB/s"), ("chunked_MBps", "chunked push MB/s"),
            ("pull_MBps", "pull MB/s (S3: presigned redirect)"),
            ("proxied_pull_MBps", "pull MB/s proxied by the node"),
            ("manifest_get_rps", "manifest GET req/s"),
            ("big_push_MBps", f"{args.big_gib} GiB push MB/s"),
            ("big_push_peak_rss_MiB", f"peak RSS per node, {args.big_gib} GiB push (MiB)")]
    modes = ["fs-1", "pg-s3-1", "pg-s3-2"]
    print(f"\n| row | {' | '.join(modes)} | pg-s3-1 / fs-1 | pg-s3-2 / pg-s3-1 |")
    print("|---|" + "---|" * (len(modes) + 2))
    for key, label in rows:
        vals = [out.get(m, {}).get(key) for m in modes]
        cells = [f"{v:,.0f}" if v is not None else "–" for v in vals]
        r1 = f"{vals[1] / vals[0]:.2f}" if vals[0] and vals[1] else "–"
        r2 = f"{vals[2] / vals[1]:.2f}" if vals[1] and vals[2] else "–"
        print(f"| {label} | {' | '.join(cells)} | {r1} | {r2} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
