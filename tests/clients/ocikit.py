"""Helpers of the real-client tests: build OCI image layouts locally, run CLI clients, talk HTTP.

There is no network beyond loopback, so every source image is built here: a real gzip'd tar layer,
an image config whose rootfs.diff_ids match the layers, an OCI image manifest, and (for the
multi-arch case) an OCI image index of two platform manifests, written as an OCI image layout
directory (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) that skopeo reads as `oci:DIR:TAG`.

Every image carries random bytes so no two tests share blobs by accident (except where a test
pushes the same image twice on purpose).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from support.http import describe, http
from support.oci import ACCEPT_MANIFESTS, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST
from support.oci import digest_of as sha256_digest

REF_NAME = "org.opencontainers.image.ref.name"

CMD_TIMEOUT = 120


# ----------------------------------------------------------------------------------------------
# small utilities


def canonical(obj: Any) -> bytes:
    """Deterministic JSON bytes (what we write is exactly what we hash)."""
    return json.dumps(obj, indent=2, sort_keys=True).encode()


def new_repo(prefix: str) -> str:
    """A repository name no other test uses (two path components, lowercase)."""
    return f"clients/{prefix}-{uuid.uuid4().hex[:12]}"


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"`{name}` binary not found on PATH")
    return path


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.args)}\n-> exit {self.returncode}\n"
            f"stdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-6000:]}"
        )


def run(args: list[str], check: bool = True, timeout: float = CMD_TIMEOUT, **kw: Any) -> Result:
    """Run a command, capture output; on check, fail the test with the whole transcript."""
    try:
        p = subprocess.run(args, check=False, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"$ {' '.join(args)} timed out after {timeout}s\n"
            f"stdout:\n{exc.stdout!r}\nstderr:\n{exc.stderr!r}"
        ) from exc
    res = Result(list(args), p.returncode, p.stdout, p.stderr)
    if check and p.returncode != 0:
        raise AssertionError(f"command failed:\n{res.describe()}")
    return res


def get_manifest(
    reg: Any, repo: str, ref: str, accept: str = ACCEPT_MANIFESTS
) -> requests.Response:
    return http.get(f"{reg.url}/v2/{repo}/manifests/{ref}", headers={"Accept": accept})


def get_blob(reg: Any, repo: str, digest: str) -> requests.Response:
    return http.get(f"{reg.url}/v2/{repo}/blobs/{digest}")


def assert_blob_served(reg: Any, repo: str, digest: str, data: bytes) -> None:
    r = get_blob(reg, repo, digest)
    assert r.status_code == 200, describe(r)
    assert r.content == data, f"blob {digest} in {repo}: bytes differ"


def assert_manifest_served(reg: Any, repo: str, ref: str, body: bytes) -> None:
    r = get_manifest(reg, repo, ref)
    assert r.status_code == 200, describe(r)
    assert r.content == body, f"manifest {repo}@{ref}: bytes differ"
    assert r.headers.get("Docker-Content-Digest") == sha256_digest(body), describe(r)


# ----------------------------------------------------------------------------------------------
# OCI image layout builder


@dataclass
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.data),
            **extra,
        }


@dataclass
class Image:
    """One platform image: config + layers + manifest (all bytes kept for comparisons)."""

    manifest: Blob
    config: Blob
    layers: list[Blob]
    diff_ids: list[str]
    platform: dict[str, str]
    layer_tars: list[bytes] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def blobs(self) -> list[Blob]:
        return [self.config, *self.layers]


@dataclass
class MultiArch:
    index: Blob
    images: list[Image]

    @property
    def digest(self) -> str:
        return self.index.digest

    def by_arch(self, arch: str) -> Image:
        return next(i for i in self.images if i.platform["architecture"] == arch)


def make_layer(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """A real tar layer (directories included) -> (uncompressed tar, gzip'd tar)."""
    buf = io.BytesIO()
    dirs: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = 1_700_000_000
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, compresslevel=6, mtime=0)


def make_image(
    arch: str = "amd64",
    os_name: str = "linux",
    extra_layer_bytes: int = 0,
    label: str | None = None,
) -> Image:
    """Build an image: one small layer with text files, plus optionally a bigger random one."""
    label = label or uuid.uuid4().hex
    layer_files = [
        {
            "etc/moorage-test": f"image {label} for {os_name}/{arch}\n".encode(),
            "opt/moorage/hello.txt": b"hello from moorage client tests\n",
            "opt/moorage/random.bin": os.urandom(4096),
        }
    ]
    if extra_layer_bytes:
        layer_files.append({"opt/moorage/big.bin": os.urandom(extra_layer_bytes)})
    tars, layers = [], []
    for files in layer_files:
        raw, gz = make_layer(files)
        tars.append(raw)
        layers.append(Blob(OCI_LAYER_GZIP, gz))
    diff_ids = [sha256_digest(t) for t in tars]
    config = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "os": os_name,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"org.moorage.test": label},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": f"moorage test layer {i}"}
            for i in range(len(layers))
        ],
    }
    config_blob = Blob(OCI_CONFIG, canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [blob.descriptor() for blob in layers],
        "annotations": {"org.opencontainers.image.title": f"moorage-test-{label}"},
    }
    return Image(
        manifest=Blob(OCI_MANIFEST, canonical(manifest)),
        config=config_blob,
        layers=layers,
        diff_ids=diff_ids,
        platform={"architecture": arch, "os": os_name},
        layer_tars=tars,
    )


def make_multiarch(archs: tuple[str, ...] = ("amd64", "arm64")) -> MultiArch:
    images = [make_image(arch=a) for a in archs]
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [img.manifest.descriptor(platform=img.platform) for img in images],
    }
    return MultiArch(index=Blob(OCI_INDEX, canonical(index)), images=images)


class OciLayout:
    """An OCI image layout directory that images and indexes are added to under tags."""

    def __init__(self, path: Path):
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self._entries: list[dict[str, Any]] = []
        self._write_index()

    def _write_index(self) -> None:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self._entries}
        (self.path / "index.json").write_bytes(canonical(doc))

    def write_blob(self, blob: Blob) -> None:
        target = self.path / "blobs" / "sha256" / blob.digest.split(":", 1)[1]
        target.write_bytes(blob.data)

    def add_image(self, tag: str, image: Image) -> Image:
        for blob in (*image.blobs, image.manifest):
            self.write_blob(blob)
        self._entries.append(image.manifest.descriptor(annotations={REF_NAME: tag}))
        self._write_index()
        return image

    def add_multiarch(self, tag: str, multi: MultiArch) -> MultiArch:
        for img in multi.images:
            for blob in (*img.blobs, img.manifest):
                self.write_blob(blob)
        self.write_blob(multi.index)
        self._entries.append(multi.index.descriptor(annotations={REF_NAME: tag}))
        self._write_index()
        return multi

    def ref(self, tag: str) -> str:
        return f"oci:{self.path}:{tag}"


def read_layout(path: Path) -> dict[str, dict[str, Any]]:
    """Tag -> top-level descriptor of an OCI image layout written by a client."""
    index = json.loads((path / "index.json").read_text())
    out: dict[str, dict[str, Any]] = {}
    for desc in index["manifests"]:
        tag = (desc.get("annotations") or {}).get(REF_NAME, "")
        out[tag] = desc
    return out


def layout_blob(path: Path, digest: str) -> bytes:
    algo, hexd = digest.split(":", 1)
    return (path / "blobs" / algo / hexd).read_bytes()


@contextmanager
def podman_cli(tmp_path: Path) -> Iterator[Callable[..., object]]:
    """A podman that works as root in this sandbox (own root, vfs, cgroupfs); skips otherwise."""
    import pytest

    require_binary("podman")
    # podman refuses a runroot longer than 50 characters: tmp_path is too long for it
    runroot = tempfile.mkdtemp(prefix="podman-run-", dir="/tmp")
    base = [
        "podman", "--root", str(tmp_path / "podman-root"), "--runroot", runroot,
        "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
    ]  # fmt: skip
    probe = run([*base, "images"], check=False, timeout=60)
    if probe.returncode != 0:
        shutil.rmtree(runroot, ignore_errors=True)
        pytest.skip(f"podman cannot run in this sandbox: {probe.describe()}")

    def call(*args: str, check: bool = True):  # type: ignore[no-untyped-def]
        return run([*base, *args], check=check)

    try:
        yield call
    finally:
        run([*base, "rmi", "--all", "--force"], check=False, timeout=60)
        shutil.rmtree(runroot, ignore_errors=True)
