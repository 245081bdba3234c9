"""Supply-chain benchmarks (issue 11), in one run:

1. scan: the `post-push.sbom` job on an image of 2 GiB / 50 000 files (4 gzip layers, a dpkg
   status and Python dist-info among random files) run in a child process: wall time and the
   child's peak RSS, against reading (gunzip + untar) the layers twice in this process;
2. manifest GET p99 of a running server by tag, a namespace with every pull policy on
   (signature, provenance, severity, secrets, unsafe models, unscanned; the image passes them
   all) against a namespace with none;
3. re-match of 10 000 stored SBOMs (done reports of 40 packages each) after a vulndb import.

    .venv/bin/python benchmarks/scanning.py          # full sizes (~10 min on 2 cores)
    .venv/bin/python benchmarks/scanning.py --small  # 128 MiB / 5 000 files, 1 000 SBOMs

Goals: scan peak RSS <= 200 MiB and faster than reading the layers twice; GET p99 with every
policy on within 20 % of none. Prints one JSON object with every figure.
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
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test harness: servers and signing fixtures

LAYERS = 4
DPKG = (b"Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\n"
        b"Source: openssl\nVersion: 3.0.11-1~deb12u2\n\n")
OS_RELEASE = b'ID=debian\nVERSION_ID="12"\n'


# -- building and pushing an image ------------------------------------------------------------

def build_layer(path: Path, files: int, size: int, index: int, compress: bool) -> None:
    """A tar (+gzip, level 1) layer of `files` files of `size` random bytes."""
    raw = path.open("wb")
    with (gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) if compress else raw) as out, \
            tarfile.open(fileobj=out, mode="w|") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        if index == 0:
            add("etc/os-release", OS_RELEASE)
            add("var/lib/dpkg/status", DPKG)
            add("usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA",
                b"Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n")
        pool = os.urandom(1 << 20)  # slices of one random MiB: cheap to make, no dedup
        for i in range(files):
            start = (i * 7919) % max(1, len(pool) - size)
            add(f"data/l{index}/d{i % 100}/f{i}.dat",  # not .bin: a model file is spooled
                i.to_bytes(8, "big") + pool[start:start + size - 8])
    raw.close()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk


def push_image(registry: Any, repo: str, layers: list[Path], tag: str, compress: bool) -> str:
    """Push layer files, a config and the manifest through the registry's services."""
    from moorage.oci.digest import parse_digest

    descs = []
    for path in layers:
        digest = sha256_file(path)
        asyncio.run(registry.uploads.push_whole(repo, parse_digest(digest), _chunks(path),
                                                path.stat().st_size))
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar"
                      + ("+gzip" if compress else ""),
                      "digest": digest, "size": path.stat().st_size})
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": []}}).encode()
    config_path = layers[0].parent / "config.json"
    config_path.write_bytes(config)
    config_digest = sha256_file(config_path)
    asyncio.run(registry.uploads.push_whole(repo, parse_digest(config_digest),
                                            _chunks(config_path), len(config)))
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": config_digest, "size": len(config)},
                           "layers": descs}).encode()
    asyncio.run(registry.manifests.push(repo, tag, manifest,
                                        "application/vnd.oci.image.manifest.v1+json", []))
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def open_registry_at(data_dir: Path, **overrides: Any) -> Any:
    from moorage.bootstrap import open_registry, prepare
    from moorage.config import Settings

    settings = Settings.from_env({}, data_dir=data_dir, auth=False, **overrides)
    prepare(settings)
    return open_registry(settings)


# -- 1. the scan ------------------------------------------------------------------------------

def scan_child(data_dir: str, repo: str, digest: str) -> None:
    """Run in the child: the scan job's processor on one manifest; print its result."""
    registry = open_registry_at(Path(data_dir))
    (sbom,) = [p for p in registry.processors if p.name == "sbom"]
    started = time.monotonic()
    result = sbom.run({"repository": repo, "digest": digest})
    report = registry.scans.show(repo, digest)
    print(json.dumps({"result": result, "seconds": time.monotonic() - started,
                      "status": report["status"], "packages": len(report["packages"])}))


def read_layers(paths: list[Path], compress: bool) -> float:
    """Seconds to (gunzip and) untar every layer once, reading each file's data."""
    started = time.monotonic()
    for path in paths:
        with (gzip.open(path, "rb") if compress else path.open("rb")) as gz, \
                tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                f = tar.extractfile(member)
                if f is not None:
                    while f.read(1 << 20):
                        pass
    return time.monotonic() - started


def bench_scan(work: Path, total_bytes: int, files: int, compress: bool) -> dict[str, Any]:
    data_dir = work / "scan-data"
    registry = open_registry_at(data_dir, sbom_on_push=True)
    layer_dir = work / "layers"
    layer_dir.mkdir()
    per_layer = files // LAYERS
    size = max(1, total_bytes // files)
    started = time.monotonic()
    paths = []
    for i in range(LAYERS):
        path = layer_dir / f"layer{i}.tar.gz"
        build_layer(path, per_layer, size, i, compress)
        paths.append(path)
    built = time.monotonic() - started
    digest = push_image(registry, "bench/scan", paths, "v1", compress)
    registry.close()
    read_once = read_layers(paths, compress)
    child = subprocess.Popen([sys.executable, __file__, "--scan-child", str(data_dir),
                              "bench/scan", digest], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    started = time.monotonic()
    out = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"scan child failed ({status}): {out}")
    result = json.loads(out.strip().splitlines()[-1])
    return {"gzip": compress, "image_bytes": per_layer * LAYERS * size, "files": per_layer * LAYERS,
            "layers_gz_bytes": sum(p.stat().st_size for p in paths),
            "build_seconds": round(built, 1), "scan_job_seconds": round(result["seconds"], 2),
            "scan_process_seconds": round(wall, 2),
            "scan_peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "read_layers_twice_seconds": round(2 * read_once, 2),
            "status": result["status"], "packages": result["packages"]}


# -- 2. manifest GET p99 ----------------------------------------------------------------------

def _cli(data_dir: Path, *args: str) -> None:
    from typer.testing import CliRunner

    from moorage.cli import app

    result = CliRunner().invoke(app, [*args, "--data-dir", str(data_dir)])
    if result.exit_code != 0:
        raise SystemExit(f"moorage {' '.join(args)}: {result.output}")


def _latencies(host: str, port: int, path: str, connections: int, requests: int) -> list[float]:
    accept = ("application/vnd.oci.image.manifest.v1+json,"
              "application/vnd.oci.image.index.v1+json")
    out: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        mine = []
        for _ in range(requests):
            started = time.perf_counter()
            conn.request("GET", path, headers={"Accept": accept})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise SystemExit(f"GET {path}: {resp.status}")
            mine.append(time.perf_counter() - started)
        conn.close()
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def bench_get(work: Path, requests: int) -> dict[str, Any]:
    from integration.signing_fixtures import (
        attestation,
        cosign_signature,
        cosign_tag,
        p256,
        public_pem,
        slsa_statement,
    )
    from support.oci import make_image, push_tree
    from support.servers import start_local

    data_dir = work / "get-data"
    reg = start_local(data_dir, "--no-auth", MOORAGE_SBOM_ON_PUSH="0")
    try:
        key = p256()
        (work / "release.pub").write_bytes(public_pem(key))
        repos = {"open": "open/app", "strict": "strict/app"}
        for repo in repos.values():
            image = make_image(layers=1)
            push_tree(reg, repo, image, tag="v1")
            if repo.startswith("strict"):
                push_tree(reg, repo, cosign_signature(key, image.digest, f"{reg.host}/{repo}"),
                          tag=cosign_tag(image.digest))
                push_tree(reg, repo, attestation(key, slsa_statement(image.digest)),
                          tag=image.digest.replace(":", "-") + ".att")
                registry = open_registry_at(data_dir)
                with registry.database.write() as uow:
                    uow.scans.save(repo, image.digest, {
                        "status": "done", "packages": [], "vulnerabilities": [],
                        "secrets": [], "model_findings": []}, time.time())
                registry.close()
        _cli(data_dir, "trust", "add", "strict", "--name", "release", "--key",
             str(work / "release.pub"))
        _cli(data_dir, "policy", "set", "strict", "--require-signature", "--require-provenance",
             "--builder", "https://github.com/*", "--deny-severity", "low", "--deny-secrets",
             "--deny-unsafe-models", "--deny-unscanned")
        host, port = reg.host.split(":")
        figures: dict[str, Any] = {}
        for name, repo in repos.items():
            _latencies(host, int(port), f"/v2/{repo}/manifests/v1", 2, 50)  # warm caches
        for round_ in range(2):  # interleaved, twice: load on a shared box moves both
            for name, repo in repos.items():
                lat = _latencies(host, int(port), f"/v2/{repo}/manifests/v1", 4, requests // 4)
                figures.setdefault(name, []).extend(lat)
        out = {f"{name}_p50_ms": round(_p(lat, 0.5), 2) for name, lat in figures.items()}
        out.update({f"{name}_p99_ms": round(_p(lat, 0.99), 2) for name, lat in figures.items()})
        out["requests_each"] = len(figures["open"])
        out["p99_ratio_strict_to_open"] = round(out["strict_p99_ms"] / out["open_p99_ms"], 2)
        return out
    finally:
        reg.stop()


# -- 3. re-match ------------------------------------------------------------------------------

def bench_rematch(work: Path, reports: int) -> dict[str, Any]:
    registry = open_registry_at(work / "rematch-data", sbom_on_push=False)
    try:
        names = [f"pkg{i}" for i in range(400)]
        started = time.monotonic()
        batch = 500
        for start in range(0, reports, batch):
            with registry.database.write() as uow:
                for n in range(start, min(reports, start + batch)):
                    packages = [{"name": names[(n + k * 7) % len(names)], "version": "1.0.0",
                                 "type": "python", "purl": f"pkg:pypi/{names[(n + k) % 400]}"
                                 "@1.0.0", "layer": "sha256:" + "0" * 64, "ecosystem": "PyPI"}
                                for k in range(40)]
                    uow.scans.save(f"bench/r{n % 100}", f"sha256:{n:064x}", {
                        "status": "done", "packages": packages, "vulnerabilities": [],
                        "secrets": [], "model_findings": []}, time.time())
        seeded = time.monotonic() - started
        osv = work / "osv"
        osv.mkdir()
        for i in range(0, 400, 4):  # every fourth package has a fixed-later vulnerability
            (osv / f"GHSA-{i}.json").write_text(json.dumps({
                "schema_version": "1.6.0", "id": f"GHSA-bnch-{i:04d}-0000",
                "modified": "2024-05-01T00:00:00Z", "summary": "bench", "details": "",
                "affected": [{"package": {"ecosystem": "PyPI", "name": names[i]},
                              "ranges": [{"type": "ECOSYSTEM", "events": [
                                  {"introduced": "0"}, {"fixed": "1.1.0"}]}]}]}))
        registry.vulndb.import_paths([osv])
        started = time.monotonic()
        result = registry.scans.rematch()
        return {"reports": reports, "packages_each": 40, "seed_seconds": round(seeded, 1),
                "rematch_seconds": round(time.monotonic() - started, 2), "result": result}
    finally:
        registry.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="quick sizes")
    parser.add_argument("--uncompressed", action="store_true",
                        help="plain tar layers (gzip of 2 GiB takes long on a small box)")
    parser.add_argument("--only", choices=("scan", "get", "rematch"), action="append")
    parser.add_argument("--scan-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scan_child:
        scan_child(*args.scan_child)
        return
    only = set(args.only or ("scan", "get", "rematch"))
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-scan-"))
    out: dict[str, Any] = {"small": args.small}
    try:
        if "scan" in only:
            out["scan"] = bench_scan(work, (128 if args.small else 2048) << 20,
                                     5_000 if args.small else 50_000, not args.uncompressed)
            print(json.dumps({"scan": out["scan"]}), file=sys.stderr)
        if "get" in only:
            out["manifest_get"] = bench_get(work, 800 if args.small else 4000)
            print(json.dumps({"manifest_get": out["manifest_get"]}), file=sys.stderr)
        if "rematch" in only:
            out["rematch"] = bench_rematch(work, 1_000 if args.small else 10_000)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
