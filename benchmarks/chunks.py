"""Chunk-level dedup and delta push, side by side with the reference registry in one run: GET
of a chunked blob vs a whole one (and vs the reference), push throughput with chunking on vs the
reference, stored bytes for successive fine-tunes, and `moorage push` (delta) vs a full push.

    PYTHONPATH=src:tests .venv/bin/python benchmarks/chunks.py [--size-mib 1024] [--tunes 10]

Moorage runs as `moorage serve --no-auth` (2 workers, SQLite + files, fsync on, chunk dedup on
as by default); the reference is Debian's docker-registry (Distribution 2.8.2) configured as in
benchmarks/run.py. Both get the same pushes from the same client (one monolithic PUT sent with
sendfile from a file written beforehand, then the artifact's manifest), one registry at a
time. The model is the tests' synthetic safetensors file (1 MiB tensors); fine-tune k changes
5 % of the base's tensors. See benchmarks/README.md for every row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
from run import (  # the side-by-side harness's HTTP client and servers
    MB,
    MiB,
    Server,
    connect,
    expect,
    free_port,
    location_path,
    make_reference,
    push_blob_bytes,
    request,
    send_file,
    with_param,
)
from support.weights import safetensors_parts

WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
REPO = "bench/model"
RESULTS = HERE / "results" / "chunks-latest.json"
QUIET_FEATURES = {"MOORAGE_SBOM_ON_PUSH": "0", "MOORAGE_MODELS_ON_PUSH": "0",
                  "MOORAGE_INSIGHTS_ON_PUSH": "0"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def start(data: Path) -> tuple[subprocess.Popen, str]:
    """A plain Moorage server (`--no-auth`, 1 worker) for benchmarks/delta.py."""
    server = moorage_server(data, "--workers", "1")
    assert server.proc is not None
    return server.proc, server.url


def moorage_server(data: Path, *extra: str) -> Server:
    """Moorage on `data` (started), open like the reference, with chunk dedup on."""
    data.mkdir(parents=True)
    port = free_port()
    cmd = [sys.executable, "-m", "moorage", "serve", "--listen", f"127.0.0.1:{port}",
           "--data-dir", str(data), "--no-auth", *extra]
    server = Server("moorage", "Moorage", cmd, port, data, data.parent / f"{data.name}.log",
                    env={**QUIET_FEATURES, "MOORAGE_CHUNK_DEDUP": "1"})
    if not server.start(120):
        raise RuntimeError(f"Moorage did not start: {server.start_error}")
    return server


def write_version(path: Path, size: int, version: int) -> str:
    """Write fine-tune `version` of the model (0: the base) to `path`; its digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with path.open("wb") as f:
        for part in safetensors_parts(size, version=version):
            h.update(part)
            f.write(part)
    return "sha256:" + h.hexdigest()


def push_file(base: str, path: Path, digest: str, tag: str) -> float:
    """Push the file as a ModelPack weight layer: seconds of the blob upload (POST + one PUT
    with the body sent by sendfile), then its config and manifest (untimed)."""
    size = path.stat().st_size
    c = connect(base)
    try:
        with path.open("rb") as f:
            t0 = time.perf_counter()
            st, h, b = request(c, "POST", f"/v2/{REPO}/blobs/uploads/")
            expect(st, (202,), "POST upload", h, b)
            loc = with_param(location_path(base, h.get("location"), "POST"), "digest", digest)
            st, h, b = send_file(c, "PUT", loc, f, 0, size,
                                 {"Content-Type": "application/octet-stream"})
            seconds = time.perf_counter() - t0
            expect(st, (201,), f"PUT {size} bytes", h, b)
    finally:
        c.close()
    config = b"{}"
    config_digest = push_blob_bytes(base, REPO, config)  # POST + PUT: the reference has no
    # one-request POST upload
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": "application/vnd.cncf.model.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                           "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": WEIGHT, "digest": digest, "size": size}]}
    requests.put(f"{base}/v2/{REPO}/manifests/{tag}", data=json.dumps(manifest),
                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
                 timeout=60).raise_for_status()
    return seconds


def saved(url: str) -> int:
    r = requests.get(f"{url}/api/v1/namespaces/{REPO.split('/')[0]}/dedup", timeout=30)
    r.raise_for_status()
    return int(r.json()["saved"])


def wait_chunked(url: str, saved_at_least: int, timeout: float = 3600) -> float:
    """Seconds until the namespace saves `saved_at_least` bytes (the job chunked the push)."""
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if saved(url) >= saved_at_least:
            return time.monotonic() - t
        time.sleep(0.2)
    raise RuntimeError("chunking did not finish")


def recipe_wait(url: str, digest: str, timeout: float = 3600) -> float:
    """Seconds until the blob's recipe is recorded (the base: recorded whole)."""
    t = time.monotonic()
    while requests.get(f"{url}/v2/{REPO}/moorage/recipes/{digest}", timeout=30
                       ).status_code != 200:
        if time.monotonic() - t > timeout:
            raise RuntimeError("the base was never recorded")
        time.sleep(0.2)
    return time.monotonic() - t


def get(base: str, digest: str, hasher: Any = None) -> tuple[int, float]:
    """GET a blob, read into an 8 MiB buffer (hashed only when asked): (bytes, seconds)."""
    buf = memoryview(bytearray(8 * MiB))
    c = connect(base)
    try:
        t0 = time.perf_counter()
        c.request("GET", f"/v2/{REPO}/blobs/{digest}")
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError(f"GET {digest}: {r.status} {r.read()[:300]!r}")
        n = 0
        while k := r.readinto(buf):
            if hasher is not None:
                hasher.update(buf[:k])
            n += k
        return n, time.perf_counter() - t0
    finally:
        c.close()


def get_rates(targets: dict[str, tuple[str, str]], size: int, runs: int) -> dict[str, Any]:
    """{name: best and median MB/s} of GETs of each (base URL, digest), the targets taking
    turns (a slow spell of the shared box hits all of them alike); then one untimed hashing
    GET of each checks its bytes."""
    rates: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(runs):
        for name, (base, digest) in targets.items():
            n, dt = get(base, digest)
            if n != size:
                raise RuntimeError(f"GET {digest} gave {n} bytes, not {size}")
            rates[name].append(n / dt / MB)
    for base, digest in targets.values():
        h = hashlib.sha256()
        get(base, digest, h)
        if "sha256:" + h.hexdigest() != digest:
            raise RuntimeError(f"GET {digest} gave other bytes")
    return {name: {"best": max(r), "median": sorted(r)[len(r) // 2], "runs": r}
            for name, r in rates.items()}


def du(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def moorage_cli(*args: str) -> float:
    """Seconds one `moorage` command takes."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "moorage", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=3600)
    return time.perf_counter() - started


def chunker(size: int) -> list[dict[str, Any]]:
    """The chunker alone at 64 vs 256 KiB average (data generation included)."""
    from moorage.chunks.chunker import cut

    out = []
    for avg in (64 << 10, 256 << 10):
        t = time.monotonic()
        a = {c.chunk_id: c.length for c in cut(safetensors_parts(size), avg)}
        secs = time.monotonic() - t
        b = list(cut(safetensors_parts(size, version=1), avg))
        new = sum(c.length for c in b if c.chunk_id not in a)
        out.append({"avg_kib": avg >> 10, "mb_s": size / secs / MB, "chunks": len(a),
                    "fine_tune_adds": new / size})
    return out


class Bench:
    """One run: both registries, the pushes of every version, then the rows."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args, self.root = args, root
        self.size = args.size_mib * MiB
        self.raw: dict[str, Any] = {"size_mib": args.size_mib, "tunes": args.tunes}

    def run(self) -> dict[str, Any]:
        if self.args.chunker:
            self.raw["chunker"] = chunker(self.size)
        moorage = moorage_server(self.root / "moorage-data")
        ref = make_reference(SimpleNamespace(registry_bin=self.args.registry_bin), self.root)
        if not ref.start(60):
            raise RuntimeError(f"the reference did not start: {ref.start_error}")
        try:
            self._pushes(moorage, ref)
            self._gets(moorage, ref)
            self._stored(moorage, ref)
        finally:
            ref.stop()
            moorage.stop()
        self._delta()
        return self.raw

    def _pushes(self, moorage: Server, ref: Server) -> None:
        pushes: list[dict[str, Any]] = []
        self.digests: list[str] = []
        for v in range(self.args.tunes + 1):
            path = self.root / "model" / f"v{v}.safetensors"
            digest = write_version(path, self.size, v)
            self.digests.append(digest)
            self.blob_size = path.stat().st_size  # the tensors plus the header
            before, cpu0 = saved(moorage.url), moorage.sample()
            m = push_file(moorage.url, path, digest, f"v{v}")
            cpu1 = moorage.sample()
            # The job runs after the push (the push path never chunks): how long until done.
            waited = recipe_wait(moorage.url, digest) if v == 0 else \
                wait_chunked(moorage.url, before + int(0.8 * self.size))
            cpu2 = moorage.sample()
            r = push_file(ref.url, path, digest, f"v{v}")
            pushes.append({"version": v, "moorage_s": m, "reference_s": r,
                           "chunked_after_s": waited, "push_cpu_s": cpu1 - cpu0,
                           "chunk_cpu_s": cpu2 - cpu1})
            log(f"v{v}: Moorage {self.size / m / MB:.0f} MB/s (chunked {waited:.1f} s later), "
                f"reference {self.size / r / MB:.0f} MB/s")
            if v > 1:
                path.unlink()
        self.raw["pushes"] = pushes

    def _gets(self, moorage: Server, ref: Server) -> None:
        # Drain the fine-tunes' old whole objects first (what a GC does after the grace).
        moorage_cli("gc", "--data-dir", str(moorage.data_dir), "--grace-period", "1h", "-q")
        base, tuned = self.digests[0], self.digests[1]
        with requests.head(f"{moorage.url}/v2/{REPO}/blobs/{tuned}", timeout=30) as r:
            r.raise_for_status()
        self.raw["get"] = get_rates({"moorage_whole": (moorage.url, base),
                                     "moorage_chunked": (moorage.url, tuned),
                                     "reference": (ref.url, tuned)},
                                    self.blob_size, self.args.get_runs)

    def _stored(self, moorage: Server, ref: Server) -> None:
        self.raw["stored"] = {"logical": (self.args.tunes + 1) * self.size,
                              "moorage": du(moorage.data_dir / "blobs"),
                              "reference": du(ref.data_dir)}

    def _delta(self) -> None:
        """`moorage push` of a new fine-tune: to a registry holding the base (only the changed
        chunks go) vs the same push to an empty registry (every chunk goes)."""
        new = self.args.tunes + 1
        model = self.root / "delta-model"
        write_version(model / "model.safetensors", self.size, new)
        base = self.root / "delta-base"
        base.mkdir()
        shutil.move(self.root / "model" / "v0.safetensors", base / "model.safetensors")
        holder = moorage_server(self.root / "delta-holder")
        empty = moorage_server(self.root / "delta-empty")
        try:
            par = ["--parallel", str(self.args.parallel), "-q"]
            t_base = moorage_cli("push", str(base), "m/model:v0", "--registry", holder.url,
                                 *par)
            t_full = moorage_cli("push", str(model), "m/model:v1", "--registry", empty.url,
                                 *par)
            t_delta = moorage_cli("push", str(model), "m/model:v1", "--registry", holder.url,
                                  *par)
            t_plain = moorage_cli("push", str(model), "m/plain:v1", "--registry", empty.url,
                                  "--plain", *par)
        finally:
            holder.stop()
            empty.stop()
        self.raw["delta"] = {"base_push_s": t_base, "full_push_s": t_full,
                             "delta_push_s": t_delta, "plain_push_s": t_plain}


def table(raw: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(row, Moorage, baseline, ratio, goal) — ratio > 1 means Moorage is better."""
    size = raw["size_mib"] * MiB
    rows = []
    g = {name: v["median"] for name, v in raw["get"].items()}
    rows.append(("GET chunked blob vs whole blob (MB/s, median)", f"{g['moorage_chunked']:.0f}",
                 f"{g['moorage_whole']:.0f}", f"{g['moorage_chunked'] / g['moorage_whole']:.2f}",
                 ">= 0.80"))
    rows.append(("GET chunked blob vs reference (MB/s, median)", f"{g['moorage_chunked']:.0f}",
                 f"{g['reference']:.0f}", f"{g['moorage_chunked'] / g['reference']:.2f}", ""))
    tunes = [p for p in raw["pushes"] if p["version"] > 0]
    m = sum(p["moorage_s"] for p in tunes)
    r = sum(p["reference_s"] for p in tunes)
    mb = len(tunes) * size / MB
    rows.append((f"push, chunking on ({len(tunes)} fine-tunes, MB/s)", f"{mb / m:.0f}",
                 f"{mb / r:.0f}", f"{r / m:.2f}", ">= 1.00"))
    w = sum(p["chunked_after_s"] for p in tunes)
    rows.append(("push + wait until chunked (MB/s)", f"{mb / (m + w):.0f}", f"{mb / r:.0f}",
                 f"{r / (m + w):.2f}", ""))
    cpu = sum(p["chunk_cpu_s"] for p in tunes)
    rows.append(("server CPU of the chunking jobs (s/GB)", f"{cpu / (mb / 1000):.1f}", "", "",
                 ""))
    s = raw["stored"]
    rows.append((f"stored, base + {raw['tunes']} fine-tunes (MiB)",
                 f"{s['moorage'] / MiB:.0f}", f"{s['reference'] / MiB:.0f}",
                 f"{s['reference'] / s['moorage']:.2f}", ""))
    d = raw["delta"]
    rows.append(("moorage push: delta vs full push (s)", f"{d['delta_push_s']:.1f}",
                 f"{d['full_push_s']:.1f}", f"{d['full_push_s'] / d['delta_push_s']:.2f}",
                 "> 1"))
    rows.append(("moorage push: delta vs --plain push (s)", f"{d['delta_push_s']:.1f}",
                 f"{d['plain_push_s']:.1f}", f"{d['plain_push_s'] / d['delta_push_s']:.2f}",
                 ""))
    return rows


def render(raw: dict[str, Any]) -> str:
    rows = table(raw)
    head = ("row", "Moorage", "baseline", "ratio", "goal")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(head, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    for c in raw.get("chunker", []):
        lines.append(f"chunker avg {c['avg_kib']} KiB: {c['mb_s']:.0f} MB/s, {c['chunks']} "
                     f"chunks, a fine-tune adds {c['fine_tune_adds']:.1%}")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", "--mib", type=int, default=1024, help="model size (1024)")
    ap.add_argument("--tunes", type=int, default=10, help="fine-tunes pushed after the base")
    ap.add_argument("--parallel", type=int, default=4, help="`moorage push --parallel`")
    ap.add_argument("--get-runs", type=int, default=7, help="GETs of each blob, taking turns")
    ap.add_argument("--chunker", action="store_true", help="also time the chunker alone")
    ap.add_argument("--registry-bin", default=shutil.which("docker-registry")
                    or "/usr/bin/docker-registry")
    ap.add_argument("--work-dir", help="parent of the temporary directory (default /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--json", default=str(RESULTS), help="raw results JSON path")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="moorage-chunks-bench-", dir=args.work_dir))
    try:
        raw = Bench(args, root).run()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(raw, indent=2))
    print(f"{args.size_mib} MiB model, {args.tunes} fine-tunes (5 % of tensors each)")
    print(render(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
