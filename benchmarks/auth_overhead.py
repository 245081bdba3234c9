"""Cost of access control on the pull path: the same requests with auth on (bearer token) and off.

    .venv/bin/python benchmarks/auth_overhead.py [--seconds 10] [--blob-mib 512]

Each server runs alone (one after the other) with 2 workers; manifest GETs come from `wrk`
(8 connections, 2 threads), the blob pull from one streaming client.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ADMIN_PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(auth: bool, work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [str(Path(sys.executable).parent / "moorage"), "serve", "--listen",
            f"127.0.0.1:{port}", "--data-dir", str(work / ("auth" if auth else "open")),
            "--workers", "2"]  # fmt: skip
    if not auth:
        args.append("--no-auth")
    env = {**os.environ, "MOORAGE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if requests.get(url + "/v2/", timeout=1).status_code in (200, 401):
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def token(url: str, repo: str) -> str:
    r = requests.get(f"{url}/token", params={"service": "moorage",
                                              "scope": f"repository:{repo}:pull,push"},
                     auth=("admin", ADMIN_PASSWORD), timeout=10)  # fmt: skip
    r.raise_for_status()
    return r.json()["token"]


def populate(url: str, headers: dict[str, str], repo: str, blob: Path) -> str:
    digest = "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
    with open(blob, "rb") as f:
        r = requests.post(f"{url}/v2/{repo}/blobs/uploads/?digest={digest}", data=f,
                          headers=headers, timeout=600)  # fmt: skip
    r.raise_for_status()
    config = b"{}"
    cdigest = "sha256:" + hashlib.sha256(config).hexdigest()
    requests.post(f"{url}/v2/{repo}/blobs/uploads/?digest={cdigest}", data=config,
                  headers=headers, timeout=10).raise_for_status()  # fmt: skip
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cdigest,
                   "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest, "size": blob.stat().st_size}],
    }  # fmt: skip
    requests.put(f"{url}/v2/{repo}/manifests/latest", data=json.dumps(manifest),
                 headers={**headers, "Content-Type": manifest["mediaType"]},
                 timeout=10).raise_for_status()  # fmt: skip
    return digest


def wrk(url: str, headers: dict[str, str], seconds: int) -> tuple[float, float]:
    cmd = ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"wrk saw {non2xx.group(1)} error responses")
    return rps, float(p99.group(1)) * scale


def pull(url: str, headers: dict[str, str], repo: str, digest: str) -> float:
    started = time.monotonic()
    total = 0
    with requests.get(f"{url}/v2/{repo}/blobs/{digest}", headers=headers, stream=True,
                      timeout=600) as r:  # fmt: skip
        r.raise_for_status()
        for chunk in r.iter_content(8 << 20):
            total += len(chunk)
    return total / (time.monotonic() - started) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--blob-mib", type=int, default=512)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="moorage-auth-bench-"))
    blob = work / "blob.bin"
    with open(blob, "wb") as f:
        f.writelines(os.urandom(1 << 20) for _ in range(args.blob_mib))
    results = {}
    try:
        for auth in (False, True):
            proc, url = start(auth, work)
            try:
                repo = "bench/model"
                headers = {"Authorization": f"Bearer {token(url, repo)}"} if auth else {}
                digest = populate(url, headers, repo, blob)
                if auth:
                    headers = {"Authorization": f"Bearer {token(url, repo)}"}  # fresh 5-min token
                get = wrk(f"{url}/v2/{repo}/manifests/latest", headers, args.seconds)
                mb_s = max(pull(url, headers, repo, digest) for _ in range(3))
                results["on" if auth else "off"] = {"manifest_get_rps": get[0],
                                                    "manifest_get_p99_ms": get[1],
                                                    "blob_pull_mb_s": mb_s}  # fmt: skip
            finally:
                proc.terminate()
                proc.wait(30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    off, on = results["off"], results["on"]
    print(f"{'row':<24}{'auth off':>12}{'auth on':>12}{'on/off':>9}")
    for key, label in (("manifest_get_rps", "manifest GET req/s"),
                       ("manifest_get_p99_ms", "manifest GET p99 ms"),
                       ("blob_pull_mb_s", "blob pull MB/s")):  # fmt: skip
        print(f"{label:<24}{off[key]:>12.1f}{on[key]:>12.1f}{on[key] / off[key]:>9.2f}")
    cost = 1 - on["manifest_get_rps"] / off["manifest_get_rps"]
    print(f"cost of auth on manifest GET throughput: {cost * 100:.1f} % (bar: under 15 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
