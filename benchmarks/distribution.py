"""Distribution: the pull-through cache (cold vs warm, upstream bytes for N concurrent cold
clients), replication of one big blob vs `skopeo copy` between the same two registries, and the
same replication through a relay that cuts the connection every ~1 % of the bytes.

    .venv/bin/python benchmarks/distribution.py [--size-mib 1024] [--cache-mib 256] [--clients 8]
        [--cut-percent 1.0]

`--size-mib 5120` is the issue's 5 GiB row: it needs ~25 GB free under $TMPDIR (the blob on
the edge, on the origin twice: replicated and skopeo's copy, and on the cut row's target) and
some minutes. Three open Moorage servers on loopback (2 workers each): `origin` holds the
content; `edge` has `origin` as an upstream, a cache namespace `hub` over it, and a push
replication rule to it; `far` is reached through the cutting relay (a fresh target, so nothing
is skipped). Before each timed copy both sides' background jobs (SBOM, chunking, …) are let
finish, so a copy is not timed against a scan. Replication also copies the image's referrers
(the SBOM the edge made); skopeo copies the image only.
Ratios: > 1.0 means Moorage is better (warm/cold speed-up; skopeo time / replication time;
one copy / upstream copies); the cut row reports the bytes sent again.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import requests

MIB = 1024 * 1024
MOORAGE = str(Path(sys.executable).parent / "moorage")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MOORAGE_JOB_POLL_INTERVAL": "0.2"}
    proc = subprocess.Popen([MOORAGE, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                             str(data), "--no-auth", "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(url + "/v2/", timeout=1).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def admin(data: Path, *args: str) -> str:
    return subprocess.run([MOORAGE, *args, "--data-dir", str(data)], check=True, text=True,
                          capture_output=True).stdout


def chunks(size: int, seed: bytes) -> Iterator[bytes]:
    for i in range(0, size, MIB):
        yield (i.to_bytes(8, "big") + seed[8:])[:min(MIB, size - i)]


def push_image(url: str, repo: str, size: int, tag: str = "v1") -> str:
    """Push an image with one `size`-byte layer (made on the fly); its layer digest."""
    seed = os.urandom(MIB)
    h = hashlib.sha256()
    for c in chunks(size, seed):
        h.update(c)
    digest = f"sha256:{h.hexdigest()}"
    start_at = requests.post(f"{url}/v2/{repo}/blobs/uploads/", timeout=30)
    location = start_at.headers["Location"]
    location = location if location.startswith("http") else url + location
    sep = "&" if "?" in location else "?"
    requests.put(f"{location}{sep}digest={digest}", data=chunks(size, seed),
                 timeout=3600).raise_for_status()
    config = b"{}"
    config_digest = f"sha256:{hashlib.sha256(config).hexdigest()}"
    r = requests.post(f"{url}/v2/{repo}/blobs/uploads/?digest={config_digest}", data=config,
                      timeout=30)
    r.raise_for_status()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": "application/octet-stream", "digest": digest,
                            "size": size}]}
    requests.put(f"{url}/v2/{repo}/manifests/{tag}", data=json.dumps(manifest),
                 headers={"Content-Type": manifest["mediaType"]}, timeout=30).raise_for_status()
    return digest


def pull(url: str) -> tuple[float, float]:
    """(seconds to the first byte, seconds to the last) of one GET."""
    start_at = time.monotonic()
    first = None
    with requests.get(url, stream=True, timeout=3600) as r:
        r.raise_for_status()
        for _ in r.iter_content(MIB):
            first = first if first is not None else time.monotonic() - start_at
    return first or 0.0, time.monotonic() - start_at


def settle(*data_dirs: Path, timeout: float = 600) -> None:
    """Wait until no background job is running or due on these registries."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = 0
        for data in data_dirs:
            jobs = json.loads(admin(data, "jobs", "list", "--state", "queued,running",
                                    "--json"))["jobs"]
            soon = time.time() + 1
            busy += sum(1 for j in jobs if j["state"] == "running"
                        or datetime.fromisoformat(j["run_at"]).timestamp() <= soon)
        if not busy:
            return
        time.sleep(0.5)
    raise RuntimeError("background jobs did not finish")


def replicate(data: Path, rule: str) -> dict:
    """Run a replication rule to its end; its last run (failing unless done)."""
    job = json.loads(admin(data, "replication", "run", rule, "--json"))["job"]
    while True:
        st = json.loads(admin(data, "replication", "status", rule, "--json"))
        last = st["last_run"]
        if st["active_job"] is None and last and last["job_id"] == job:
            break
        time.sleep(0.5)
    if last["state"] != "done":
        raise RuntimeError(f"replication failed: {last}")
    return last


def seconds(run: dict) -> float:
    """A run's own time: not the CLI's start-up or the polling."""
    return (datetime.fromisoformat(run["finished_at"])
            - datetime.fromisoformat(run["started_at"])).total_seconds()


class CuttingRelay:
    """A TCP relay to `target` that cuts the connection carrying a request body each time
    another `every` bytes went upward (the client sees a reset; what was relayed reaches the
    target, as when a link drops), counting every byte it relays upward."""

    def __init__(self, target: int, every: int) -> None:
        self.target, self.every = target, every
        self.port = free_port()
        self.carried = self.cuts = 0
        self._next = every
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def upward() -> None:
            while data := await reader.read(256 * 1024):
                self.carried += len(data)
                up_writer.write(data)
                await up_writer.drain()
                # only a big read is a body: a short request (HEAD, a manifest) is never cut
                if self.carried >= self._next and len(data) >= 16 * 1024:
                    self._next = self.carried + self.every
                    self.cuts += 1
                    writer.transport.abort()
                    up_writer.close()
                    return
            up_writer.close()

        async def downward() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        try:
            await asyncio.gather(upward(), downward())
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


def bytes_sent(url: str) -> float:
    text = requests.get(url + "/metrics", timeout=30).text
    found = re.search(r"^moorage_http_bytes_sent_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="the replicated blob")
    parser.add_argument("--cache-mib", type=int, default=256, help="the cached blobs")
    parser.add_argument("--clients", type=int, default=8, help="concurrent cold pulls")
    parser.add_argument("--cut-percent", type=float, default=1.0,
                        help="the cut row cuts the connection every this share of the bytes "
                             "(0: no cut row)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-dist-"))
    procs: list[subprocess.Popen] = []
    rows: list[tuple[str, str, str]] = []
    try:
        origin, origin_url = start(work / "origin")
        edge, edge_url = start(work / "edge")
        procs += [origin, edge]
        admin(work / "edge", "upstream", "add", "origin", origin_url)
        admin(work / "edge", "cache", "add", "hub", "--upstream", "origin", "--namespace", "hub")
        time.sleep(1.5)  # the servers' view of cache namespaces refreshes each second

        layer = push_image(origin_url, "lib/cold", args.cache_mib * MIB)
        blob = f"{edge_url}/v2/hub/lib/cold/blobs/{layer}"
        requests.get(f"{edge_url}/v2/hub/lib/cold/manifests/v1", timeout=60).raise_for_status()
        cold_first, cold = pull(blob)
        warm_first, warm = pull(blob)
        rows.append(("cache: cold pull (first byte / total)", f"{cold_first:.3f}s / {cold:.2f}s",
                     f"warm {warm_first:.3f}s / {warm:.2f}s: x{cold / warm:.1f}"))

        layer = push_image(origin_url, "lib/many", args.cache_mib * MIB)
        blob = f"{edge_url}/v2/hub/lib/many/blobs/{layer}"
        requests.get(f"{edge_url}/v2/hub/lib/many/manifests/v1", timeout=60).raise_for_status()
        before = bytes_sent(origin_url)
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(lambda _: pull(blob), range(args.clients)))
        copies = (bytes_sent(origin_url) - before) / (args.cache_mib * MIB)
        rows.append((f"cache: upstream copies for {args.clients} cold clients", f"{copies:.2f}",
                     f"ratio {1 / copies if copies else 0:.2f} (goal 1.0)"))

        push_image(edge_url, "big/app", args.size_mib * MIB)
        admin(work / "edge", "replication", "add", "out", "--push-to", "origin",
              "--repos", "big/app")
        settle(work / "edge", work / "origin")
        out = replicate(work / "edge", "out")
        replicated = seconds(out)
        size_mb = args.size_mib * MIB / 1e6
        rate = f"{replicated:.1f}s ({size_mb / replicated:.0f} MB/s)"
        row = [f"replication of {args.size_mib} MiB", rate]
        if shutil.which("skopeo"):
            settle(work / "edge", work / "origin")
            start_at = time.monotonic()
            subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                            f"docker://{edge_url[7:]}/big/app:v1",
                            f"docker://{origin_url[7:]}/big/skopeo:v1"], check=True,
                           capture_output=True)
            skopeo = time.monotonic() - start_at
            row.append(f"skopeo copy {skopeo:.1f}s: ratio {skopeo / replicated:.2f} (goal >= 1)")
        else:
            row.append("skopeo not installed")
        rows.append((row[0], row[1], row[2]))

        if args.cut_percent > 0:
            far, far_url = start(work / "far")
            procs.append(far)
            relay = CuttingRelay(int(far_url.rsplit(":", 1)[1]),
                                 max(64 * 1024, int(args.size_mib * MIB * args.cut_percent / 100)))
            admin(work / "edge", "upstream", "add", "far", relay.url)
            admin(work / "edge", "replication", "add", "cut", "--push-to", "far",
                  "--repos", "big/app")
            settle(work / "edge", work / "far")
            run = replicate(work / "edge", "cut")
            relay.stop()
            # what the uncut run moved (image and referrers); the rest is sent again (or headers)
            resent = max(0, relay.carried - out["bytes"])
            share = 100 * resent / out["bytes"]
            failed = len(run.get("failures") or [])
            rows.append((f"replication, cut every {args.cut_percent:g} % of the bytes",
                         f"{seconds(run):.1f}s, {relay.cuts} cuts",
                         f"resent {resent / MIB:.1f} MiB = {share:.2f} % (goal <= 5 %; "
                         + f"{failed} failed attempts)"))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:<24}  {ratio}")


if __name__ == "__main__":
    main()
