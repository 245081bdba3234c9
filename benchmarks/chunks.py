"""Chunk-level dedup: GET throughput of a chunked blob vs a whole one, push throughput with
chunking on, stored bytes for successive fine-tunes, and the chunker at 64 vs 256 KiB average.

    PYTHONPATH=src:tests .venv/bin/python benchmarks/chunks.py [--mib 1024] [--tunes 10]

One server (`--no-auth`, 1 worker, SQLite + files) in a temporary directory; the model is the
tests' synthetic safetensors file (1 MiB tensors; each fine-tune changes 5 % of them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from support.weights import safetensors_parts

WEIGHT = "application/vnd.cncf.model.weight.v1.raw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [sys.executable, "-m", "moorage", "serve", "--listen", f"127.0.0.1:{port}",
            "--data-dir", str(data), "--workers", "1", "--no-auth"]
    env = {**os.environ, "MOORAGE_SBOM_ON_PUSH": "0", "MOORAGE_MODELS_ON_PUSH": "0"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(url + "/v2/", timeout=1).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


def push_stream(url: str, repo: str, parts: Iterator[bytes]) -> tuple[str, int]:
    """Stream a blob up (POST, one PATCH with a chunked body, PUT ?digest); (digest, size)."""
    h, size = hashlib.sha256(), 0

    def body() -> Iterator[bytes]:
        nonlocal size
        for p in parts:
            h.update(p)
            size += len(p)
            yield p

    r = requests.post(f"{url}/v2/{repo}/blobs/uploads/", timeout=60)
    loc = requests.compat.urljoin(url, r.headers["Location"])
    r = requests.patch(loc, data=body(), headers={"Content-Type": "application/octet-stream"},
                       timeout=600)
    r.raise_for_status()
    loc = requests.compat.urljoin(url, r.headers["Location"])
    digest = "sha256:" + h.hexdigest()
    r = requests.put(loc, params={"digest": digest}, timeout=600)
    r.raise_for_status()
    return digest, size


def push_model(url: str, repo: str, mib: int, version: int) -> tuple[str, int, float]:
    """Push one version as an artifact; (layer digest, size, seconds)."""
    t = time.monotonic()
    digest, size = push_stream(url, repo, safetensors_parts(mib << 20, version=version))
    config = b"{}"
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    requests.post(f"{url}/v2/{repo}/blobs/uploads/", params={"digest": config_digest},
                  data=config, timeout=60).raise_for_status()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": "application/vnd.cncf.model.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                           "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": WEIGHT, "digest": digest, "size": size}]}
    r = requests.put(f"{url}/v2/{repo}/manifests/v{version}", data=json.dumps(manifest),
                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
                     timeout=60)
    r.raise_for_status()
    return digest, size, time.monotonic() - t


def saved(url: str, repo: str) -> int:
    r = requests.get(f"{url}/api/v1/namespaces/{repo.split('/')[0]}/dedup", timeout=30)
    return int(r.json()["saved"])


def wait_chunked(url: str, repo: str, saved_at_least: int, timeout: float = 1800) -> float:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if saved(url, repo) >= saved_at_least:
            return time.monotonic() - t
        time.sleep(0.5)
    raise RuntimeError("chunking did not finish")


def get_mb_s(url: str, repo: str, digest: str, runs: int = 3) -> float:
    best = 0.0
    for _ in range(runs):
        t, n = time.monotonic(), 0
        with requests.get(f"{url}/v2/{repo}/blobs/{digest}", stream=True, timeout=600) as r:
            for part in r.iter_content(1 << 20):
                n += len(part)
        best = max(best, n / (time.monotonic() - t) / 1e6)
    return best


def gc(data: Path) -> None:
    """`moorage gc` (safe while the server runs): drains the old objects of chunked blobs."""
    subprocess.run([sys.executable, "-m", "moorage", "gc", "--data-dir", str(data),
                    "--grace-period", "1h"], check=True, capture_output=True, timeout=600)


def stored(data: Path) -> int:
    return sum(p.stat().st_size for p in (data / "blobs").rglob("*") if p.is_file())


def chunker(mib: int) -> None:
    from moorage.chunks.chunker import cut

    for avg in (64 << 10, 256 << 10):
        t = time.monotonic()
        a = {c.chunk_id: c.length for c in cut(safetensors_parts(mib << 20), avg)}
        secs = time.monotonic() - t
        b = list(cut(safetensors_parts(mib << 20, version=1), avg))
        new = sum(c.length for c in b if c.chunk_id not in a)
        print(f"chunker avg {avg >> 10} KiB: {(mib << 20) / secs / 1e6:.0f} MB/s, "
              f"{len(a)} chunks, fine-tune adds {new / (mib << 20):.1%}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--tunes", type=int, default=10)
    args = ap.parse_args()
    chunker(args.mib)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        proc, url = start(data)
        try:
            base, size, secs = push_model(url, "bench/model", args.mib, 0)
            print(f"push v0 (whole): {size / secs / 1e6:.0f} MB/s")
            tuned, _, secs = push_model(url, "bench/model", args.mib, 1)
            waited = wait_chunked(url, "bench/model", int(0.8 * size))
            print(f"push v1: {size / secs / 1e6:.0f} MB/s; chunked {waited:.1f} s after")
            gc(data)
            whole, chunked = get_mb_s(url, "bench/model", base), get_mb_s(url, "bench/model",
                                                                         tuned)
            print(f"GET whole {whole:.0f} MB/s, chunked {chunked:.0f} MB/s "
                  f"({chunked / whole:.0%} of whole)")
            for v in range(2, args.tunes + 1):
                before = saved(url, "bench/model")
                push_model(url, "bench/model", args.mib, v)
                wait_chunked(url, "bench/model", before + int(0.8 * size))
            gc(data)
            print(f"stored for {args.tunes} fine-tunes + base: {stored(data) / 2**20:.0f} MiB "
                  f"(whole: {(args.tunes + 1) * size / 2**20:.0f} MiB, one version "
                  f"{size / 2**20:.0f} MiB)")
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
