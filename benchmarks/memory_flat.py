"""Push and pull one huge blob through `moorage serve` and report the server's peak RSS.

    .venv/bin/python benchmarks/memory_flat.py --size-gib 10

The client streams generated data (a random 64 MiB block, varied per block so nothing dedups)
with a streamed PATCH, then PUT ?digest=, then GETs the blob and verifies its sha256. The server's
whole process tree is sampled every 100 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

BLOCK = 64 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RssSampler(threading.Thread):
    """Peak RSS (MiB) of a process and its children, sampled in the background."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak = 0.0
        self.phase_peak = 0.0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs) / 2**20
            except psutil.Error:
                rss = 0.0
            self.peak = max(self.peak, rss)
            self.phase_peak = max(self.phase_peak, rss)
            time.sleep(0.1)


def blocks(size: int, seed: bytes):  # type: ignore[no-untyped-def]
    base = bytearray(os.urandom(BLOCK))
    sent = 0
    i = 0
    while sent < size:
        base[:16] = hashlib.md5(seed + i.to_bytes(8, "big")).digest()
        n = min(BLOCK, size - sent)
        yield bytes(base[:n]) if n < BLOCK else bytes(base)
        sent += n
        i += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-gib", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    size = int(args.size_gib * 2**30)
    work = Path(tempfile.mkdtemp(prefix="moorage-mem-"))
    port = free_port()
    moorage = Path(sys.executable).parent / "moorage"
    proc = subprocess.Popen(
        [str(moorage), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(work / "data"),
         "--workers", str(args.workers), "--no-auth"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/v2/")
                if c.getresponse().status in (200, 401):
                    break
            except OSError:
                time.sleep(0.1)
        sampler = RssSampler(proc.pid)
        sampler.start()
        time.sleep(0.5)
        idle = sampler.peak

        conn = http.client.HTTPConnection("127.0.0.1", port, blocksize=1 << 20)
        conn.request("POST", "/v2/mem/big/blobs/uploads/")
        resp = conn.getresponse()
        resp.read()
        location = resp.getheader("Location")
        hasher = hashlib.sha256()

        def body():  # type: ignore[no-untyped-def]
            for block in blocks(size, b"moorage"):
                hasher.update(block)
                yield block

        sampler.phase_peak = 0.0
        started = time.monotonic()
        conn.request("PATCH", location, body=body(), encode_chunked=True,
                     headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 202, resp.status
        digest = "sha256:" + hasher.hexdigest()
        conn.request("PUT", f"{location}?digest={digest}", headers={"Content-Length": "0"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 201, resp.status
        push_s = time.monotonic() - started
        push_peak = sampler.phase_peak

        sampler.phase_peak = 0.0
        started = time.monotonic()
        conn.request("GET", f"/v2/mem/big/blobs/{digest}")
        resp = conn.getresponse()
        check = hashlib.sha256()
        while chunk := resp.read(8 << 20):
            check.update(chunk)
        pull_s = time.monotonic() - started
        assert "sha256:" + check.hexdigest() == digest, "pulled bytes do not match"
        pull_peak = sampler.phase_peak
        sampler.stop_event.set()

        gib = size / 2**30
        print(f"blob size            {gib:.1f} GiB (streamed PATCH, then PUT ?digest=)")
        print(f"server RSS idle      {idle:.0f} MiB ({args.workers} workers + supervisor)")
        print(f"server RSS peak push {push_peak:.0f} MiB  ({size / push_s / 1e6:.0f} MB/s)")
        print(
            f"server RSS peak pull {pull_peak:.0f} MiB  ({size / pull_s / 1e6:.0f} MB/s, sha256 verified)"
        )
        return 0
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
