#!/usr/bin/env python3
"""Side-by-side benchmark: Moorage vs. the reference registry (CNCF Distribution 2.8.2).

Run:  /work/main/.venv/bin/python benchmarks/run.py [--size-mib 1024] [--only moorage|reference]

See benchmarks/README.md for what every row measures and how.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import http.client
import io
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from registry_auth import Credentials

RESULTS_DIR = HERE / "results"
MiB = 1 << 20
MB = 1_000_000
GB = 1_000_000_000

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT_MANIFESTS = (
    f"{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json"
)

BIG_REPO = "bench/big"
SMALL_REPO = "bench/small"
TAGS_REPO = "bench/tags"
SMALL_TAG = "latest"
BENCH_USER = "admin"  # Moorage's first account; its password comes from MOORAGE_ADMIN_PASSWORD


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- errors


class RowError(Exception):
    """A registry answered a benchmark request wrongly. Carries the exact status and body."""

    def __init__(
        self,
        what: str,
        status: int | None = None,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.what = what
        self.status = status
        if isinstance(body, bytes):
            body = body[:2000].decode("utf-8", "replace")
        self.body = body
        self.headers = headers
        super().__init__(self.describe())

    def describe(self) -> str:
        s = self.what
        if self.status is not None:
            s += f" -> HTTP {self.status}"
        if self.body:
            s += f" body={self.body!r}"
        return s

    def as_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "status": self.status,
            "body": self.body,
            "headers": self.headers,
        }


# --------------------------------------------------------------------------- HTTP helpers


def connect(base: str, timeout: float = 600.0) -> http.client.HTTPConnection:
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout, blocksize=MiB)
    c.connect()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def _hdrs(resp: http.client.HTTPResponse) -> dict[str, str]:
    return {k.lower(): v for k, v in resp.getheaders()}


def request(
    c: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    h = dict(headers or {})
    if body is not None:
        h.setdefault("Content-Length", str(len(body)))
    elif method in ("PUT", "POST", "PATCH"):
        h.setdefault("Content-Length", "0")
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    return r.status, _hdrs(r), data


def send_file(
    c: http.client.HTTPConnection,
    method: str,
    path: str,
    f,
    offset: int,
    count: int,
    headers: dict[str, str],
) -> tuple[int, dict[str, str], bytes]:
    """Send `count` bytes of file `f` from `offset` as the request body with sendfile(2).

    Zero-copy and constant memory: the benchmark process never holds the blob in memory.
    """
    c.putrequest(method, path, skip_accept_encoding=True)
    for k, v in headers.items():
        c.putheader(k, v)
    c.putheader("Content-Length", str(count))
    c.endheaders()
    send_err: Exception | None = None
    try:
        sent = c.sock.sendfile(f, offset, count)
        if sent != count:
            send_err = RuntimeError(f"sendfile sent {sent} of {count} bytes")
    except OSError as e:  # server closed early (e.g. rejected the upload): read its answer
        send_err = e
    try:
        r = c.getresponse()
        data = r.read()
    except (OSError, http.client.HTTPException) as e:
        raise RowError(f"{method} {path}: no response ({e!r}; send error: {send_err!r})") from e
    if send_err is not None and r.status < 400:
        raise RowError(f"{method} {path}: body send failed: {send_err!r}", r.status, data)
    return r.status, _hdrs(r), data


def location_path(base: str, location: str | None, what: str) -> str:
    if not location:
        raise RowError(f"{what}: response has no Location header")
    u = urllib.parse.urlsplit(urllib.parse.urljoin(base + "/", location))
    return u.path + (f"?{u.query}" if u.query else "")


def with_param(path: str, key: str, value: str) -> str:
    sep = "&" if "?" in path else "?"
    return f"{path}{sep}{key}={urllib.parse.quote(value, safe=':')}"


def expect(status: int, ok: tuple[int, ...], what: str, hdrs: dict[str, str], body: bytes) -> None:
    if status not in ok:
        raise RowError(what, status, body, hdrs)


def push_blob_bytes(base: str, repo: str, data: bytes, auth: dict[str, str] | None = None) -> str:
    """Small blob: POST + single PUT ?digest=. Returns the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    auth = auth or {}
    c = connect(base, 60)
    try:
        st, h, b = request(c, "POST", f"/v2/{repo}/blobs/uploads/", headers=auth)
        expect(st, (202,), f"POST /v2/{repo}/blobs/uploads/", h, b)
        loc = location_path(base, h.get("location"), "POST upload")
        st, h, b = request(
            c,
            "PUT",
            with_param(loc, "digest", digest),
            body=data,
            headers={"Content-Type": "application/octet-stream", **auth},
        )
        expect(st, (201,), f"PUT upload ?digest={digest}", h, b)
    finally:
        c.close()
    return digest


def check_blob(
    base: str, repo: str, digest: str, size: int, auth: dict[str, str] | None = None
) -> None:
    """HEAD the blob after a push (not timed): it must exist with the right size."""
    c = connect(base, 60)
    try:
        st, h, b = request(c, "HEAD", f"/v2/{repo}/blobs/{digest}", headers=auth)
    finally:
        c.close()
    if st != 200:
        raise RowError(f"HEAD /v2/{repo}/blobs/{digest} after push", st, b, h)
    if int(h.get("content-length", "-1")) != size:
        raise RowError(
            f"HEAD blob after push: Content-Length {h.get('content-length')} != {size}", st, b, h
        )


# --------------------------------------------------------------------------- servers


def client_cpu() -> float:
    """CPU seconds of this benchmark process plus its waited-for children (wrk)."""
    t = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        t += ru.ru_utime + ru.ru_stime
    return t


def machine_busy_cpu() -> float:
    """System-wide busy CPU seconds so far (all processes, all cores)."""
    t = psutil.cpu_times()
    busy = sum(t) - t.idle - getattr(t, "iowait", 0.0)
    return busy - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def wait_quiet(max_wait: float, threshold: float = 0.15, window: float = 3.0) -> float:
    """Measure the machine's background load (busy cores) over `window` seconds.

    With max_wait > 0, keep measuring until the load is below `threshold` cores or the wait
    runs out. Returns the last measurement.
    """
    deadline = time.monotonic() + max_wait
    t_start = time.monotonic()
    said = False
    while True:
        b0, t0 = machine_busy_cpu(), time.monotonic()
        time.sleep(window)
        load = (machine_busy_cpu() - b0) / (time.monotonic() - t0)
        if load < threshold or time.monotonic() >= deadline:
            if said:
                log(f"  waited {time.monotonic() - t_start:.0f} s; load now {load:.2f} cores")
            return load
        if not said:
            log(f"  machine busy ({load:.2f} cores used by other processes), waiting")
            said = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    key: str  # "moorage" | "reference"
    label: str
    cmd: list[str]
    port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    start_error: str | None = None
    env: dict[str, str] | None = None  # extra environment for the server process
    creds: Credentials | None = None  # None: an open registry, requests carry no credentials
    # process-tree accounting (filled by the sampler)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cpu_seen: dict[tuple[int, float], float] = field(default_factory=dict)
    procs: dict[tuple[int, float], psutil.Process] = field(default_factory=dict)
    peak_rss: int = 0
    row_peak_rss: int = 0  # reset at the start of every row
    death_reported: bool = False
    peak_pss: int = 0
    peak_nprocs: int = 0
    samples: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def auth(self, repo: str | None, actions: str = "pull,push") -> dict[str, str]:
        """Headers that authenticate a request on `repo` ({} on an open registry)."""
        return self.creds.headers(repo, actions) if self.creds else {}

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def start(self, timeout: float = 30.0) -> bool:
        log(f"starting {self.label}: {' '.join(self.cmd)}")
        try:
            with open(self.log_path, "ab") as logf:
                self.proc = subprocess.Popen(
                    self.cmd,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env={**os.environ, **(self.env or {})},
                )
        except OSError as e:
            self.start_error = f"cannot exec {self.cmd[0]}: {e}"
            return False
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.start_error = (
                    f"exited with code {self.proc.returncode} before GET /v2/ "
                    f"answered; log tail:\n{self.log_tail()}"
                )
                self.proc = None
                return False
            try:
                c = connect(self.url, 2)
                st, _, b = request(c, "GET", "/v2/")
                if st == 401 and self.creds is not None:
                    st, _, b = request(c, "GET", "/v2/", headers=self.auth(None))
                c.close()
                if st == 200:
                    return True
                last = f"GET /v2/ -> {st} {b[:300]!r}"
            except (OSError, RuntimeError) as e:
                last = repr(e)
            time.sleep(0.1)
        self.start_error = f"GET /v2/ did not return 200 within {timeout}s (last: {last})"
        self.stop()
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tree(self) -> list[psutil.Process]:
        if not self.alive():
            return []
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def sample(self, with_pss: bool = False) -> float:
        """Sample the process tree: update peak RSS/PSS and per-process CPU. Returns tree CPU s.

        CPU of processes that exited is kept at its last sampled value, so a worker that is
        replaced mid-run does not make the tree's CPU total go backwards.
        """
        with self.lock:
            rss = pss = 0
            n = 0
            for p in self.tree():
                try:
                    key = (p.pid, p.create_time())
                    p = self.procs.setdefault(key, p)
                    with p.oneshot():
                        ct = p.cpu_times()
                        mem = p.memory_info()
                    self.cpu_seen[key] = ct.user + ct.system
                    rss += mem.rss
                    if with_pss:
                        pss += p.memory_full_info().pss
                    n += 1
                except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                    continue
            self.samples += 1
            self.peak_rss = max(self.peak_rss, rss)
            self.row_peak_rss = max(self.row_peak_rss, rss)
            self.peak_nprocs = max(self.peak_nprocs, n)
            if with_pss:
                self.peak_pss = max(self.peak_pss, pss)
            return sum(self.cpu_seen.values())

    def stop(self) -> None:
        """SIGTERM the root by PID, then SIGKILL it and any leftover processes by PID.

        Leftovers are the root's current descendants plus every process the sampler ever saw
        in the tree (a worker orphaned by a crashed root is no longer a descendant).
        psutil checks each PID's start time, so a reused PID is never signalled.
        """
        if self.proc is None:
            return
        with self.lock:
            others = {(p.pid, p.create_time()): p for p in self.procs.values()}
        try:
            for p in self.tree():
                others.setdefault((p.pid, p.create_time()), p)
        except psutil.Error:
            pass
        others = {k: p for k, p in others.items() if p.pid != self.proc.pid}
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
        left = [p for p in others.values() if p.is_running()]
        for p in left:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(left, timeout=5)
        self.proc = None


class Sampler(threading.Thread):
    def __init__(self, servers: list[Server], interval: float = 0.1):
        super().__init__(daemon=True)
        self.servers = servers
        self.interval = interval
        self.stop_evt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop_evt.is_set():
            for s in self.servers:
                s.sample(with_pss=(i % 5 == 0))
            i += 1
            self.stop_evt.wait(self.interval)

    def stop(self) -> None:
        self.stop_evt.set()
        self.join()


def make_moorage(args, root: Path) -> Server:
    d = root / "moorage-data"
    d.mkdir()
    port = free_port()
    cmd = [
        args.moorage_bin,
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(d),
        *moorage_open_flag(args),
        *args.moorage_arg,
    ]
    s = Server("moorage", "Moorage", cmd, port, d, root / "moorage.log")
    if not args.no_auth:
        # Auth on, as `moorage serve` runs by default: the first account's password is ours.
        password = "bench-" + os.urandom(12).hex()
        s.env = {"MOORAGE_ADMIN_PASSWORD": password}
        s.creds = Credentials(s.url, BENCH_USER, password)
    return s


def moorage_open_flag(args) -> list[str]:
    """`--no-auth` if asked for and this Moorage has it (an open registry like the reference)."""
    if not args.no_auth:
        return []
    try:
        out = subprocess.run(
            [args.moorage_bin, "serve", "--help"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ["--no-auth"] if "--no-auth" in out.stdout + out.stderr else []


def make_reference(args, root: Path) -> Server:
    d = root / "reference-data"
    d.mkdir()
    port = free_port()
    cfg = root / "reference-config.yml"
    # Stock Debian/upstream config minus auth, with the brief's settings. The access log is
    # disabled (it is an unconditional stdout line per request, not a "warn" level message).
    cfg.write_text(
        f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {d}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
"""
    )
    cmd = [args.registry_bin, "serve", str(cfg)]
    return Server(
        "reference", "reference (Distribution 2.8.2)", cmd, port, d, root / "reference.log"
    )


# --------------------------------------------------------------------------- ceilings


def gen_random_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 64 * MiB)
            buf = os.urandom(n)
            h.update(buf)
            f.write(buf)
            left -= n
    return "sha256:" + h.hexdigest()


def sha256_ceiling(total: int) -> float:
    buf = os.urandom(64 * MiB)
    h = hashlib.sha256()
    h.update(buf)  # warm up
    h = hashlib.sha256()
    n = max(1, total // len(buf))
    t0 = time.perf_counter()
    for _ in range(n):
        h.update(buf)
    h.hexdigest()
    return n * len(buf) / (time.perf_counter() - t0) / MB


def disk_ceiling(root: Path, total: int) -> float:
    path = root / "disk-ceiling.bin"
    buf = os.urandom(8 * MiB)
    os.sync()
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        left = total
        while left > 0:
            f.write(buf[: min(left, len(buf))])
            left -= len(buf)
        f.flush()
        os.fsync(f.fileno())
    dt = time.perf_counter() - t0
    path.unlink()
    return total / dt / MB


# --------------------------------------------------------------------------- rows


@dataclass
class Ctx:
    args: argparse.Namespace
    root: Path
    size: int
    file_a: Path
    digest_a: str
    file_b: Path
    digest_b: str
    small: dict[str, Any] = field(default_factory=dict)  # manifest etc. per server key
    tags_ready: dict[str, bool] = field(default_factory=dict)


def row_push_monolithic(ctx: Ctx, s: Server) -> dict[str, Any]:
    size = ctx.size
    auth = s.auth(BIG_REPO)  # a token fetched before the timer, as docker holds one per push
    with open(ctx.file_a, "rb") as f:
        c = connect(s.url)
        try:
            t0 = time.perf_counter()
            st, h, b = request(c, "POST", f"/v2/{BIG_REPO}/blobs/uploads/", headers=auth)
            expect(st, (202,), f"POST /v2/{BIG_REPO}/blobs/uploads/", h, b)
            loc = location_path(s.url, h.get("location"), "POST upload")
            path = with_param(loc, "digest", ctx.digest_a)
            st, h, b = send_file(
                c, "PUT", path, f, 0, size, {"Content-Type": "application/octet-stream", **auth}
            )
            dt = time.perf_counter() - t0
            expect(st, (201,), f"PUT {path} ({size} bytes, monolithic)", h, b)
        finally:
            c.close()
    return {"value": size / dt / MB, "seconds": dt, "bytes": size, "moved": size}


def row_push_chunked(ctx: Ctx, s: Server) -> dict[str, Any]:
    size, chunk = ctx.size, ctx.args.chunk_mib * MiB
    nchunks = 0
    auth = s.auth(BIG_REPO)
    with open(ctx.file_b, "rb") as f:
        c = connect(s.url)
        try:
            t0 = time.perf_counter()
            st, h, b = request(c, "POST", f"/v2/{BIG_REPO}/blobs/uploads/", headers=auth)
            expect(st, (202,), f"POST /v2/{BIG_REPO}/blobs/uploads/", h, b)
            loc = location_path(s.url, h.get("location"), "POST upload")
            off = 0
            while off < size:
                n = min(chunk, size - off)
                rng = f"{off}-{off + n - 1}"
                st, h, b = send_file(
                    c,
                    "PATCH",
                    loc,
                    f,
                    off,
                    n,
                    {"Content-Type": "application/octet-stream", "Content-Range": rng, **auth},
                )
                expect(st, (202,), f"PATCH {loc} Content-Range: {rng}", h, b)
                loc = location_path(s.url, h.get("location"), f"PATCH {rng}")
                off += n
                nchunks += 1
            path = with_param(loc, "digest", ctx.digest_b)
            st, h, b = request(c, "PUT", path, headers=auth)
            dt = time.perf_counter() - t0
            expect(st, (201,), f"final PUT {path} (empty body)", h, b)
        finally:
            c.close()
    return {"value": size / dt / MB, "seconds": dt, "bytes": size, "moved": size, "chunks": nchunks}


def _get_blob(
    base: str, digest: str, sink, auth: dict[str, str] | None = None
) -> tuple[int, float]:
    """GET the big blob (following redirects); feed each read to sink(memoryview)."""
    path = f"/v2/{BIG_REPO}/blobs/{digest}"
    url = base
    headers = dict(auth or {})
    buf = bytearray(8 * MiB)
    mv = memoryview(buf)
    t0 = time.perf_counter()
    for _ in range(5):
        c = connect(url)
        try:
            c.request("GET", path, headers=headers)
            r = c.getresponse()
            if r.status in (301, 302, 303, 307, 308):
                r.read()
                target = urllib.parse.urljoin(url + path, r.getheader("location") or "")
                u = urllib.parse.urlsplit(target)
                if f"{u.scheme}://{u.netloc}" != url:
                    headers = {}  # credentials never follow a redirect to another host
                url = f"{u.scheme}://{u.netloc}"
                path = u.path + (f"?{u.query}" if u.query else "")
                continue
            if r.status != 200:
                raise RowError(f"GET {path}", r.status, r.read(), _hdrs(r))
            n = 0
            while True:
                k = r.readinto(mv)
                if not k:
                    break
                sink(mv[:k])
                n += k
            return n, time.perf_counter() - t0
        finally:
            c.close()
    raise RowError(f"GET {path}: too many redirects")


def row_pull(ctx: Ctx, s: Server) -> dict[str, Any]:
    n, dt = _get_blob(s.url, ctx.digest_a, lambda _mv: None, s.auth(BIG_REPO, "pull"))
    if n != ctx.size:
        raise RowError(f"GET blob returned {n} bytes, expected {ctx.size}")
    return {"value": n / dt / MB, "seconds": dt, "bytes": n, "moved": n}


def verify_pull(ctx: Ctx, s: Server) -> str | None:
    """Untimed second pull that hashes the body (the timed pull does not hash)."""
    h = hashlib.sha256()
    n, _ = _get_blob(s.url, ctx.digest_a, h.update, s.auth(BIG_REPO, "pull"))
    got = "sha256:" + h.hexdigest()
    if n != ctx.size or got != ctx.digest_a:
        return f"pulled {n} bytes with digest {got}, expected {ctx.size} bytes {ctx.digest_a}"
    return None


def small_image() -> tuple[bytes, bytes, bytes]:
    """A tiny but valid OCI image: gzip'd tar layer, config, manifest (bytes)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        payload = b"hello from the moorage benchmark\n" * 64
        ti = tarfile.TarInfo("bench/hello.txt")
        ti.size = len(payload)
        ti.mtime = 0
        tf.addfile(ti, io.BytesIO(payload))
    tar = raw.getvalue()
    layer = gzip.compress(tar, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        },
        separators=(",", ":"),
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "size": len(config),
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
            },
            "layers": [
                {
                    "mediaType": OCI_LAYER,
                    "size": len(layer),
                    "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                }
            ],
        },
        separators=(",", ":"),
    ).encode()
    return layer, config, manifest


def push_small_image(s: Server, repo: str, tag: str) -> bytes:
    layer, config, manifest = small_image()
    auth = s.auth(repo)
    push_blob_bytes(s.url, repo, config, auth)
    push_blob_bytes(s.url, repo, layer, auth)
    c = connect(s.url, 60)
    try:
        st, h, b = request(
            c,
            "PUT",
            f"/v2/{repo}/manifests/{tag}",
            body=manifest,
            headers={"Content-Type": OCI_MANIFEST, **auth},
        )
        expect(st, (201,), f"PUT /v2/{repo}/manifests/{tag}", h, b)
    finally:
        c.close()
    return manifest


def prepare_manifest(ctx: Ctx, s: Server) -> bytes:
    if s.key in ctx.small:
        return ctx.small[s.key]
    manifest = push_small_image(s, SMALL_REPO, SMALL_TAG)
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    c = connect(s.url, 60)
    try:
        for method in ("GET", "HEAD"):
            st, h, b = request(
                c,
                method,
                f"/v2/{SMALL_REPO}/manifests/{SMALL_TAG}",
                headers={"Accept": ACCEPT_MANIFESTS, **s.auth(SMALL_REPO, "pull")},
            )
            expect(st, (200,), f"{method} /v2/{SMALL_REPO}/manifests/{SMALL_TAG}", h, b)
            if method == "GET" and b != manifest:
                raise RowError("GET manifest returned different bytes than pushed", st, b, h)
            if h.get("docker-content-digest") not in (None, digest):
                raise RowError(
                    f"{method} manifest Docker-Content-Digest "
                    f"{h.get('docker-content-digest')} != {digest}",
                    st,
                    b,
                    h,
                )
    finally:
        c.close()
    ctx.small[s.key] = manifest
    return manifest


WRK_LUA = r"""
wrk.method = "%(method)s"
wrk.headers["Accept"] = "%(accept)s"
%(extra)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\":%%d,\"duration_us\":%%d,\"bytes\":%%d,\"p50_us\":%%d," ..
    "\"p90_us\":%%d,\"p99_us\":%%d,\"mean_us\":%%f,\"max_us\":%%d,\"err_connect\":%%d," ..
    "\"err_read\":%%d,\"err_write\":%%d,\"err_status\":%%d,\"err_timeout\":%%d}\n",
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def load_wrk(ctx: Ctx, url: str, method: str, auth: dict[str, str] | None = None) -> dict[str, Any]:
    script = ctx.root / f"wrk-{method.lower()}.lua"
    extra = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (auth or {}).items())
    script.write_text(WRK_LUA % {"method": method, "accept": ACCEPT_MANIFESTS, "extra": extra})
    cmd = [
        ctx.args.wrk_bin,
        "-t",
        str(ctx.args.wrk_threads),
        "-c",
        str(ctx.args.concurrency),
        "-d",
        f"{ctx.args.duration}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(
        cmd, check=False, capture_output=True, text=True, timeout=ctx.args.duration + 60
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RowError(
            f"wrk failed (rc={out.returncode}): {out.stdout[-1500:]} {out.stderr[-1500:]}"
        )
    r = json.loads(line[len("WRKJSON ") :])
    errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] + r["err_timeout"]
    return {
        "value": r["requests"] / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1000,
        "p90_ms": r["p90_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "mean_ms": r["mean_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
        "requests": r["requests"],
        "errors": errors,
        "wrk": r,
        "client": "wrk",
    }


class _LoadConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection issuing the same request back to back."""

    def __init__(self, gen: _PyLoad):
        self.gen = gen
        self.buf = bytearray()
        self.t0 = 0.0
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send()

    def send(self) -> None:
        self.t0 = time.perf_counter()
        self.transport.write(self.gen.req)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            status = int(head[9:12])
            body_len = 0
            chunked = False
            if not self.gen.is_head and status not in (204, 304):
                i = head.find(b"\r\ncontent-length:")
                if i >= 0:
                    j = head.find(b"\r\n", i + 2)
                    body_len = int(head[i + 17 : j if j >= 0 else len(head)])
                elif b"\r\ntransfer-encoding: chunked" in head:
                    chunked = True
            if chunked:
                term = self.buf.find(b"\r\n0\r\n\r\n", end)
                if term < 0:
                    return
                total = term + 7
            else:
                total = end + 4 + body_len
                if len(self.buf) < total:
                    return
            now = time.perf_counter()
            self.gen.record(now - self.t0, status, bytes(self.buf[:total]))
            del self.buf[:total]
            if now < self.gen.t_end:
                self.send()
            else:
                self.transport.close()
                return

    def connection_lost(self, exc) -> None:
        if time.perf_counter() < self.gen.t_end:
            self.gen.errors += 1
            self.gen.first_error = self.gen.first_error or (None, f"connection lost: {exc!r}")
        if not self.closed.done():
            self.closed.set_result(None)


class _PyLoad:
    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        method: str,
        duration: float,
        auth: dict[str, str] | None = None,
    ):
        self.host, self.port = host, port
        self.is_head = method == "HEAD"
        extra = "".join(f"{k}: {v}\r\n" for k, v in (auth or {}).items())
        self.req = (
            f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Accept: {ACCEPT_MANIFESTS}\r\nUser-Agent: moorage-bench\r\n{extra}\r\n"
        ).encode()
        self.duration = duration
        self.t_end = 0.0
        self.lat: list[float] = []
        self.errors = 0
        self.first_error: tuple[int | None, Any] | None = None

    def record(self, dt: float, status: int, raw: bytes) -> None:
        self.lat.append(dt)
        if status != 200:
            self.errors += 1
            self.first_error = self.first_error or (status, raw[:2000])

    async def run(self, concurrency: int) -> float:
        loop = asyncio.get_running_loop()
        self.t_end = time.perf_counter() + self.duration
        t0 = time.perf_counter()
        conns = [
            (await loop.create_connection(lambda: _LoadConn(self), self.host, self.port))[1]
            for _ in range(concurrency)
        ]
        await asyncio.gather(*(c.closed for c in conns))
        return time.perf_counter() - t0


def load_python(
    ctx: Ctx, url: str, method: str, auth: dict[str, str] | None = None
) -> dict[str, Any]:
    """Built-in load client: asyncio (uvloop if available) raw HTTP/1.1 keep-alive connections.

    Used for HEAD because wrk 4.1 cannot parse bodiless HEAD responses that carry a
    Content-Length (every request times out).
    """
    u = urllib.parse.urlsplit(url)
    gen = _PyLoad(u.hostname, u.port, u.path, method, ctx.args.duration, auth)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    dt = runner(gen.run(ctx.args.concurrency))
    lat = sorted(gen.lat)
    if not lat:
        raise RowError(f"{method} load: no request completed ({gen.first_error})")

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * p))] * 1000

    res = {
        "value": len(lat) / dt,
        "p50_ms": pct(0.5),
        "p90_ms": pct(0.9),
        "p99_ms": pct(0.99),
        "mean_ms": statistics.fmean(lat) * 1000,
        "max_ms": lat[-1] * 1000,
        "requests": len(lat),
        "errors": gen.errors,
        "client": "python-asyncio",
    }
    if gen.first_error:
        res["first_error"] = {
            "status": gen.first_error[0],
            "raw": gen.first_error[1]
            if isinstance(gen.first_error[1], str)
            else gen.first_error[1].decode("utf-8", "replace"),
        }
    return res


def row_manifest(method: str):
    def run(ctx: Ctx, s: Server) -> dict[str, Any]:
        prepare_manifest(ctx, s)
        url = f"{s.url}/v2/{SMALL_REPO}/manifests/{SMALL_TAG}"
        auth = s.auth(SMALL_REPO, "pull")  # one token for the whole load, as a puller holds
        if ctx.args.load_client == "wrk" and method != "HEAD":
            res = load_wrk(ctx, url, method, auth)
        else:
            res = load_python(ctx, url, method, auth)
        if res["requests"] == 0:
            raise RowError(f"{method} load test completed no request: {res}")
        if res["errors"]:
            c = connect(s.url, 10)
            try:
                st, h, b = request(
                    c,
                    method,
                    f"/v2/{SMALL_REPO}/manifests/{SMALL_TAG}",
                    headers={"Accept": ACCEPT_MANIFESTS, **auth},
                )
            finally:
                c.close()
            raise RowError(
                f"{res['errors']} of {res['requests']} {method} requests failed "
                f"under load; a follow-up {method} got",
                st,
                b,
                h,
            )
        return res

    return run


def push_tags(ctx: Ctx, s: Server) -> dict[str, Any]:
    """Push ntags tags of one manifest with concurrent PUTs (aiohttp)."""
    import aiohttp

    manifest = push_small_image(s, TAGS_REPO, "t00000")
    ntags = ctx.args.tags
    auth = [s.auth(TAGS_REPO)]  # one token shared by the clients, renewed on a 401

    async def main() -> tuple[int, list[Any]]:
        failures: list[Any] = []
        todo = iter(range(1, ntags))
        conn = aiohttp.TCPConnector(limit=ctx.args.tag_push_concurrency)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=conn, timeout=timeout) as sess:

            async def put(u: str) -> tuple[int, bytes]:
                headers = {"Content-Type": OCI_MANIFEST, **auth[0]}
                async with sess.put(u, data=manifest, headers=headers) as r:
                    return r.status, await r.read()

            async def worker() -> None:
                for i in todo:
                    u = f"{s.url}/v2/{TAGS_REPO}/manifests/t{i:05d}"
                    status, body = await put(u)
                    if status == 401 and s.creds is not None:
                        # the token expired: fetch a new one and retry once, as docker does
                        s.creds.forget(f"repository:{TAGS_REPO}:pull,push")
                        auth[0] = await asyncio.to_thread(s.auth, TAGS_REPO)
                        status, body = await put(u)
                    if status != 201:
                        failures.append((i, status, body))
                        if len(failures) >= 20:
                            return

            await asyncio.gather(*(worker() for _ in range(ctx.args.tag_push_concurrency)))
        return len(failures), failures

    t0 = time.perf_counter()
    nfail, failures = asyncio.run(main())
    dt = time.perf_counter() - t0
    if nfail:
        i, st, body = failures[0]
        raise RowError(
            f"{nfail}+ tag PUTs failed; first: PUT /v2/{TAGS_REPO}/manifests/t{i:05d}", st, body
        )
    ctx.tags_ready[s.key] = True
    return {"value": (ntags - 1) / dt, "seconds": dt, "tags": ntags}


def row_tag_list(ctx: Ctx, s: Server) -> dict[str, Any]:
    if not ctx.tags_ready.get(s.key):
        raise RowError("skipped: pushing the tags failed")
    ntags = ctx.args.tags
    want = {f"t{i:05d}" for i in range(ntags)}
    auth = s.auth(TAGS_REPO, "pull")
    c = connect(s.url, 120)
    try:
        path = f"/v2/{TAGS_REPO}/tags/list"
        st, h, b = request(c, "GET", path, headers=auth)
        expect(st, (200,), f"GET {path}", h, b)
        got = json.loads(b).get("tags") or []
        note = "no n parameter"
        if len(got) < ntags:
            first = f"GET {path} returned {len(got)} tags (Link: {h.get('link')!r})"
            path = f"/v2/{TAGS_REPO}/tags/list?n={ntags}"
            st, h, b = request(c, "GET", path, headers=auth)
            expect(st, (200,), f"GET {path} (after: {first})", h, b)
            got = json.loads(b).get("tags") or []
            note = f"n={ntags} (default page: {first})"
        if set(got) != want or len(got) != ntags:
            raise RowError(
                f"GET {path} returned {len(got)} tags ({len(set(got) & want)} of the "
                f"{ntags} expected; Link: {h.get('link')!r})",
                st,
                b[:500],
                h,
            )
        times = []
        deadline = time.perf_counter() + ctx.args.tag_list_budget
        for _ in range(ctx.args.tag_list_reps):
            t0 = time.perf_counter()
            c.request("GET", path, headers=auth)
            r = c.getresponse()
            body = r.read()
            times.append(time.perf_counter() - t0)
            if r.status != 200:
                raise RowError(f"GET {path} (repeat)", r.status, body, _hdrs(r))
            if len(times) >= 5 and time.perf_counter() > deadline:
                break
    finally:
        c.close()
    med = statistics.median(times)
    return {
        "value": med * 1000,
        "per_s": 1 / med,
        "reps": len(times),
        "min_ms": min(times) * 1000,
        "max_ms": max(times) * 1000,
        "request": path,
        "note": note,
        "bytes": len(body),
    }


# name, runner, unit, higher_is_better, counts toward CPU/GB
ROWS: list[tuple[str, Any, str, bool, bool]] = [
    ("push_monolithic", row_push_monolithic, "MB/s", True, True),
    ("push_chunked", row_push_chunked, "MB/s", True, True),
    ("pull", row_pull, "MB/s", True, True),
    ("manifest_get", row_manifest("GET"), "req/s", True, False),
    ("manifest_head", row_manifest("HEAD"), "req/s", True, False),
    ("tag_push", push_tags, "tags/s", True, False),
    ("tag_list", row_tag_list, "ms", False, False),
]


# --------------------------------------------------------------------------- report


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "FAIL"
    if unit in ("MB/s", "req/s", "tags/s", "MiB"):
        return f"{v:,.0f} {unit}" if v >= 100 else f"{v:,.1f} {unit}"
    if unit == "ms":
        return f"{v:,.2f} ms" if v < 100 else f"{v:,.0f} ms"
    if unit == "s/GB":
        return f"{v:.2f} s/GB"
    if unit == "x":
        return f"{v:.2f}"
    return f"{v:.3g} {unit}"


def build_table(results: dict[str, Any], keys: list[str]) -> list[tuple[str, str, str, str]]:
    def val(k: str, row: str, sub: str = "value") -> float | None:
        r = results.get(k, {}).get("rows", {}).get(row)
        return None if r is None or "error" in r else r.get(sub)

    def srv(k: str, name: str) -> float | None:
        return results.get(k, {}).get("server", {}).get(name)

    size = results["_size_mib"]
    spec = [
        (f"1. monolithic push {size} MiB", lambda k: val(k, "push_monolithic"), "MB/s", True),
        (
            f"2. chunked push {size} MiB ({results['_chunk_mib']} MiB chunks)",
            lambda k: val(k, "push_chunked"),
            "MB/s",
            True,
        ),
        (f"3. pull {size} MiB (no client hash)", lambda k: val(k, "pull"), "MB/s", True),
        ("4a. manifest GET, 8 clients", lambda k: val(k, "manifest_get"), "req/s", True),
        ("4a. manifest GET p99", lambda k: val(k, "manifest_get", "p99_ms"), "ms", False),
        ("4b. manifest HEAD, 8 clients", lambda k: val(k, "manifest_head"), "req/s", True),
        ("4b. manifest HEAD p99", lambda k: val(k, "manifest_head", "p99_ms"), "ms", False),
        (
            f"5a. push {results['_tags']} tags (concurrent PUT)",
            lambda k: val(k, "tag_push"),
            "tags/s",
            True,
        ),
        (
            f"5b. tag list, {results['_tags']} tags (median)",
            lambda k: val(k, "tag_list"),
            "ms",
            False,
        ),
        ("6a. peak RSS, process tree sum", lambda k: srv(k, "peak_rss_mib"), "MiB", False),
        ("6a'. peak PSS, process tree sum", lambda k: srv(k, "peak_pss_mib"), "MiB", False),
        ("6a''. idle RSS after start", lambda k: srv(k, "idle_rss_mib"), "MiB", False),
        ("6b. server CPU per GB pushed+pulled", lambda k: srv(k, "cpu_s_per_gb"), "s/GB", False),
        ("push MB/s / min(sha256, disk) ceiling", lambda k: srv(k, "push_vs_ceiling"), "x", True),
    ]
    table = []
    for label, get, unit, higher in spec:
        m = get("moorage") if "moorage" in keys else None
        r = get("reference") if "reference" in keys else None
        if m is None and r is None and results.get("_partial"):
            continue  # a row --rows left out
        ratio = "-"
        if m is not None and r is not None and m > 0 and r > 0:
            ratio = f"{(m / r) if higher else (r / m):.2f}x"
        table.append(
            (
                label,
                fmt(m, unit) if "moorage" in keys else "-",
                fmt(r, unit) if "reference" in keys else "-",
                ratio,
            )
        )
    return table


def print_table(table, ceilings: dict[str, float]) -> str:
    head = ("row", "Moorage", "reference", "Moorage vs ref (>1 = Moorage better)")
    widths = [max(len(str(r[i])) for r in [head, *table]) for i in range(4)]
    lines = []
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines.append(sep)
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    lines.append(sep)
    for r in table:
        lines.append(
            "| "
            + r[0].ljust(widths[0])
            + " | "
            + " | ".join(str(x).rjust(w) for x, w in zip(r[1:], widths[1:]))
            + " |"
        )
    lines.append(sep)
    lines.append(
        f"machine ceilings: sha256 {ceilings['sha256_mb_s']:,.0f} MB/s (one core, 64 MiB "
        f"buffers); disk write {ceilings['disk_write_mb_s']:,.0f} MB/s (8 MiB writes + "
        f"fsync); min {ceilings['min_mb_s']:,.0f} MB/s"
    )
    text = "\n".join(lines)
    print(text, flush=True)
    return text


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size-mib", type=int, default=1024, help="big blob size (default 1024)")
    p.add_argument("--chunk-mib", type=int, default=64, help="PATCH chunk size (default 64)")
    p.add_argument("--only", choices=["moorage", "reference"], help="run one registry only")
    p.add_argument("--rows", help="comma-separated rows to run (default: all): "
                   + ",".join(r[0] for r in ROWS))
    p.add_argument("--work-dir", help="parent dir for temp data (default: /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (data, logs)")
    p.add_argument("--duration", type=int, default=10, help="seconds per manifest load test")
    p.add_argument("--concurrency", type=int, default=8, help="manifest load clients (8)")
    p.add_argument(
        "--load-client",
        choices=["wrk", "python"],
        default="wrk" if shutil.which("wrk") else "python",
        help="client for manifest GET (HEAD always uses the python client)",
    )
    p.add_argument("--wrk-bin", default=shutil.which("wrk") or "wrk")
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--tags", type=int, default=10_000, help="tags for the tag-list row")
    p.add_argument("--tag-push-concurrency", type=int, default=8)
    p.add_argument("--tag-list-reps", type=int, default=20)
    p.add_argument(
        "--tag-list-budget",
        type=float,
        default=60.0,
        help="stop tag-list repetitions after this many seconds (min 5 reps)",
    )
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the untimed hashing re-pull that checks the pulled digest",
    )
    p.add_argument("--moorage-bin", default=str(Path(sys.executable).with_name("moorage")))
    p.add_argument(
        "--moorage-arg",
        action="append",
        default=[],
        help="extra argument for `moorage serve` (repeatable)",
    )
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="run Moorage with --no-auth, an open registry like the reference (default: auth "
        "on, as `moorage serve` runs; the clients then send bearer tokens from /token)",
    )
    p.add_argument("--moorage-auth", action="store_true", help=argparse.SUPPRESS)  # the default
    p.add_argument(
        "--registry-bin", default=shutil.which("docker-registry") or "/usr/bin/docker-registry"
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="before the ceilings and before every row, wait up to this many seconds for "
        "other processes to stop using CPU (< 0.15 cores)",
    )
    p.add_argument("--json", default=str(RESULTS_DIR / "latest.json"), help="results JSON path")
    return p.parse_args()


def _sigterm(signum, frame) -> None:
    raise SystemExit(f"killed by signal {signum}")  # unwinds through the cleanup below


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with `&`
    parent = Path(args.work_dir) if args.work_dir else Path("/tmp")
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="moorage-bench-", dir=parent))
    try:
        return bench(args, root)
    finally:
        if args.keep:
            print(f"kept work dir {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def bench(args: argparse.Namespace, root: Path) -> int:
    started = time.time()
    size = args.size_mib * MiB
    log(f"work dir {root}")
    keys = [args.only] if args.only else ["moorage", "reference"]
    servers: list[Server] = []
    sampler: Sampler | None = None
    results: dict[str, Any] = {
        "_size_mib": args.size_mib,
        "_partial": bool(args.rows),
        "_chunk_mib": args.chunk_mib,
        "_tags": args.tags,
    }
    try:
        log(f"generating 2 x {args.size_mib} MiB random files")
        file_a, file_b = root / "blob-a.bin", root / "blob-b.bin"
        digest_a = gen_random_file(file_a, size)
        digest_b = gen_random_file(file_b, size)
        noisy: list[str] = []
        background = wait_quiet(args.wait_quiet)
        log(f"background load before start: {background:.2f} cores")
        log("measuring machine ceilings")
        sha = sha256_ceiling(size)
        disk = disk_ceiling(root, size)
        ceilings = {"sha256_mb_s": sha, "disk_write_mb_s": disk, "min_mb_s": min(sha, disk)}
        log(f"sha256 {sha:,.0f} MB/s, disk write+fsync {disk:,.0f} MB/s")
        ctx = Ctx(args, root, size, file_a, digest_a, file_b, digest_b)

        for k in keys:
            s = make_moorage(args, root) if k == "moorage" else make_reference(args, root)
            results[k] = {"label": s.label, "cmd": s.cmd, "rows": {}, "server": {}}
            if not s.start():
                log(f"{s.label} failed to start: {s.start_error}")
                results[k]["start_error"] = s.start_error
            else:
                time.sleep(1.0)  # let workers finish booting
                s.sample(with_pss=True)
                results[k]["server"]["idle_rss_mib"] = s.peak_rss / MiB
                results[k]["server"]["idle_processes"] = s.peak_nprocs
                log(f"  idle: {s.peak_nprocs} processes, RSS {s.peak_rss / MiB:.0f} MiB")
            servers.append(s)
        live = [s for s in servers if s.alive()]
        sampler = Sampler(live)
        sampler.start()
        cpu_moved: dict[str, list[float]] = {s.key: [0.0, 0.0] for s in servers}

        chosen = set(args.rows.split(",")) if args.rows else {r[0] for r in ROWS}
        for name, fn, unit, _higher, counts_cpu in ROWS:
            if name not in chosen:
                continue
            for s in servers:
                rows = results[s.key]["rows"]
                if not s.alive():
                    if s.start_error:
                        why = "skipped: the server failed to start (see above)"
                    elif not s.death_reported:
                        code = s.proc.poll() if s.proc else None
                        why = f"server died (exit code {code}) before this row; log tail:\n"
                        why += s.log_tail()
                        s.death_reported = True
                    else:
                        why = "skipped: the server died earlier (see above)"
                    rows[name] = {"error": {"what": why}}
                    continue
                os.sync()  # start every row without the previous row's dirty pages
                if args.wait_quiet > 0:
                    wait_quiet(args.wait_quiet, window=1.0)
                log(f"{s.label}: {name}")
                with s.lock:
                    s.row_peak_rss = 0
                cpu0 = s.sample()
                ru0 = client_cpu()
                busy0, wall0 = machine_busy_cpu(), time.perf_counter()
                try:
                    res = fn(ctx, s)
                    res["unit"] = unit
                    res["client_cpu_s"] = client_cpu() - ru0
                except RowError as e:
                    res = {"error": e.as_dict()}
                    log(f"  FAILED: {e.describe()}")
                except Exception as e:  # noqa: BLE001 - report, keep benchmarking
                    res = {"error": {"what": f"{type(e).__name__}: {e}"}}
                    log(f"  FAILED: {type(e).__name__}: {e}")
                if "error" in res and not s.alive() and not s.death_reported:
                    time.sleep(0.5)  # let the log catch up
                    code = s.proc.poll() if s.proc else None
                    res["error"]["server_died"] = f"exit code {code}; log tail:\n{s.log_tail()}"
                    s.death_reported = True
                    log(f"  the server exited (code {code}) during this row")
                cpu1 = s.sample()
                wall = time.perf_counter() - wall0
                res["server_cpu_s"] = cpu1 - cpu0
                res["server_peak_rss_mib"] = s.row_peak_rss / MiB
                res["wall_s"] = wall
                # CPU used during the row by anything that is neither the server nor the client
                other = machine_busy_cpu() - busy0 - (cpu1 - cpu0) - (client_cpu() - ru0)
                res["other_cpu_cores"] = max(0.0, other) / wall if wall > 0 else 0.0
                if res["other_cpu_cores"] > 0.2:
                    noisy.append(f"{s.key} {name}: {res['other_cpu_cores']:.2f} cores")
                    log(f"  WARNING: other processes used {res['other_cpu_cores']:.2f} cores")
                if "error" not in res:
                    log(
                        f"  {res['value']:,.2f} {unit}"
                        + (f"  p99 {res['p99_ms']:.2f} ms" if "p99_ms" in res else "")
                        + f"  (server CPU {cpu1 - cpu0:.2f} s, client CPU "
                        + f"{res['client_cpu_s']:.2f} s, server peak RSS "
                        + f"{res['server_peak_rss_mib']:.0f} MiB)"
                    )
                    if counts_cpu:
                        cpu_moved[s.key][0] += cpu1 - cpu0
                        cpu_moved[s.key][1] += res["moved"]
                    if name in ("push_monolithic", "push_chunked"):
                        d, n = (digest_a, size) if name == "push_monolithic" else (digest_b, size)
                        try:
                            check_blob(s.url, BIG_REPO, d, n, s.auth(BIG_REPO, "pull"))
                        except RowError as e:
                            res = {"error": e.as_dict(), "server_cpu_s": cpu1 - cpu0}
                            log(f"  FAILED post-push check: {e.describe()}")
                    if name == "pull" and not args.no_verify:
                        err = verify_pull(ctx, s)
                        res["verified_sha256"] = err is None
                        if err:
                            res = {"error": {"what": err}, "server_cpu_s": cpu1 - cpu0}
                            log(f"  FAILED verification: {err}")
                rows[name] = res

        sampler.stop()
        sampler = None
        for s in servers:
            srv = results[s.key]["server"]
            if s.samples:
                s.sample(with_pss=True) if s.alive() else None
                srv["peak_rss_mib"] = s.peak_rss / MiB
                srv["peak_pss_mib"] = s.peak_pss / MiB if s.peak_pss else None
                srv["peak_processes"] = s.peak_nprocs
                srv["rss_samples"] = s.samples
            cpu, moved = cpu_moved[s.key]
            srv["cpu_s_push_pull"] = cpu
            srv["gb_moved"] = moved / GB
            srv["cpu_s_per_gb"] = cpu / (moved / GB) if moved else None
            mono = results[s.key]["rows"].get("push_monolithic", {})
            srv["push_vs_ceiling"] = (
                mono["value"] / ceilings["min_mb_s"] if "value" in mono else None
            )
            srv["alive_at_end"] = s.alive()
            if not s.alive() and not s.start_error:
                srv["log_tail"] = s.log_tail()
    finally:
        if sampler is not None:
            sampler.stop()
        for s in servers:
            s.stop()
        log(f"servers stopped (elapsed {time.time() - started:.0f} s)")

    table = build_table(results, keys)
    print()
    text = print_table(table, ceilings)
    failures = []
    for k in keys:
        if results[k].get("start_error"):
            failures.append(f"{k}: failed to start: {results[k]['start_error']}")
        for name, r in results[k]["rows"].items():
            if "error" in r:
                e = r["error"]
                msg = e.get("what", "")
                if e.get("server_died"):
                    msg += f"\n    server died during the row: {e['server_died']}"
                if e.get("status") is not None:
                    msg += f" -> HTTP {e['status']}"
                if e.get("body"):
                    msg += f" body={e['body'][:600]!r}"
                failures.append(f"{k} {name}: {msg}")
    if failures:
        print("\nFailures:")
        for f in failures:
            print("  - " + f)
    notes = []
    for k in keys:
        tl = results[k]["rows"].get("tag_list", {})
        if "request" in tl:
            notes.append(
                f"{k} tag list: GET {tl['request']} ({tl['note']}), {tl['reps']} reps, "
                f"{tl['per_s']:.1f} full listings/s"
            )
        for row in ("manifest_get", "manifest_head"):
            ml = results[k]["rows"].get(row, {})
            if "client" in ml:
                notes.append(
                    f"{k} {row}: client {ml['client']}, {ml['requests']} requests, "
                    f"p50 {ml['p50_ms']:.2f} ms, p90 {ml['p90_ms']:.2f} ms, "
                    f"p99 {ml['p99_ms']:.2f} ms, client CPU {ml['client_cpu_s']:.1f} s"
                )
    notes.append(
        "Moorage auth: "
        + ("off (--no-auth)" if args.no_auth else "on (bearer tokens from /token)")
        + "; reference: open registry"
    )
    notes.append(f"background load before the run: {background:.2f} cores (of {os.cpu_count()})")
    if noisy:
        notes.append(
            "WARNING: other processes used > 0.2 cores during: "
            + "; ".join(noisy)
            + " - those rows are noisy"
        )
    if notes:
        print("\nNotes:")
        for n in notes:
            print("  - " + n)

    out = {
        "meta": {
            "command": " ".join([sys.executable, *sys.argv]),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "elapsed_s": time.time() - started,
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "mem_gib": psutil.virtual_memory().total / (1 << 30),
            "size_mib": args.size_mib,
            "chunk_mib": args.chunk_mib,
            "tags": args.tags,
            "load_client": args.load_client,
            "moorage_auth": not args.no_auth,
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "units": "MB = 1e6 bytes, GB = 1e9 bytes",
            "moorage_env": {k: v for k, v in os.environ.items() if k.startswith("MOORAGE_")},
            "background_load_cores": background,
            "noisy_rows": noisy,
        },
        "ceilings": ceilings,
        "results": {k: results[k] for k in keys},
        "table": [dict(zip(("row", "moorage", "reference", "ratio"), r)) for r in table],
        "table_text": text,
        "failures": failures,
    }
    jp = Path(args.json)
    jp.parent.mkdir(parents=True, exist_ok=True)
    text_json = json.dumps(out, indent=2, default=str)
    jp.write_text(text_json)
    stamped = jp.with_name(time.strftime("run-%Y%m%d-%H%M%S.json", time.localtime(started)))
    stamped.write_text(text_json)
    print(f"\nresults written to {jp} (and {stamped.name})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
