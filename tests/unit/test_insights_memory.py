"""The insights job reads a 200 MiB layer with bounded memory: measured in the process that
runs the job (its peak RSS against its RSS just before the job)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import random
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from moorage.oci.digest import parse_digest

from .conftest import make_registry
from .content import OCI_CONFIG, OCI_MANIFEST, digest_of, push, push_blob

MIB = 1 << 20
FILE_BYTES = 200 * MIB
TAR = "application/vnd.oci.image.layer.v1.tar"
MAX_GROWTH = 48 * MIB

JOB = r"""
import json, sys
from pathlib import Path
from moorage.bootstrap import open_registry
from moorage.config import Settings

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)

reg = open_registry(Settings.from_env({}, data_dir=Path(sys.argv[1]), auth=False))
reg.insights.run(sys.argv[2], sys.argv[3])  # warm up: imports, statements, connections
before = status("VmRSS")
result = reg.insights.run(sys.argv[2], sys.argv[4])
report = reg.insights.show(sys.argv[2], sys.argv[4])
print(json.dumps({"before": before, "peak": status("VmHWM"), "result": result,
                  "file_bytes": report["totals"]["file_bytes"]}))
"""


def layer_stream() -> Iterator[bytes]:
    """A plain tar with one 200 MiB sparse-ish file: 64 KiB of random bytes per MiB."""
    info = tarfile.TarInfo("models/weights.bin")
    info.size = FILE_BYTES
    yield info.tobuf(tarfile.PAX_FORMAT)
    rnd = random.Random(13)
    for _ in range(FILE_BYTES // MIB):
        yield rnd.randbytes(64 * 1024) + bytes(MIB - 64 * 1024)
    yield bytes(1024)  # end of archive (the size is a multiple of 512)


async def _chunks() -> AsyncIterator[bytes]:
    for chunk in layer_stream():
        yield chunk


def small_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("etc/hello")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    return out.getvalue()


def image(repo: str, layer_digest: str, size: int) -> bytes:
    config = json.dumps({"architecture": "amd64", "os": "linux", "layer": layer_digest}).encode()
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": TAR, "digest": layer_digest, "size": size}]}).encode(), config


def test_a_200_mib_layer_is_read_with_bounded_memory(tmp_path: Path) -> None:
    data_dir = tmp_path / "registry"
    reg = make_registry(data_dir)
    repo = "team/weights"
    try:
        digests = []
        for layer, size in ((small_tar(), None), (None, None)):
            if layer is not None:
                blob = push_blob(reg, repo, layer)
                size = len(layer)
            else:
                h = hashlib.sha256()
                size = 0
                for chunk in layer_stream():
                    h.update(chunk)
                    size += len(chunk)
                blob = "sha256:" + h.hexdigest()
                asyncio.run(reg.uploads.push_whole(repo, parse_digest(blob), _chunks(), size))
            content, config = image(repo, blob, size)
            push_blob(reg, repo, config)
            push(reg, repo, digest_of(content)[7:19], content)
            digests.append(digest_of(content))
    finally:
        reg.close()
    out = subprocess.run([sys.executable, "-c", JOB, str(data_dir), repo, *digests],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    measured = json.loads(out.stdout.splitlines()[-1])
    assert measured["file_bytes"] == FILE_BYTES
    growth = measured["peak"] - measured["before"]
    assert growth < MAX_GROWTH, f"RSS grew by {growth / MIB:.1f} MiB reading a 200 MiB layer"
