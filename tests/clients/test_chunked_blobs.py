"""Real clients on chunked blobs: a model and its fine-tune pushed with oras (a raw weight layer
above `chunk_min_blob_size`), the fine-tune chunked by the registry's job (its blob is served
from its recipe, most of its chunks shared with the base), then pulled unchanged by oras and by
skopeo (`dir:`), byte for byte and digest for digest; a Range GET across an exact chunk
boundary of the chunked blob returns those bytes."""

from __future__ import annotations

import hashlib
import json
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from ocikit import new_repo, require_binary, run, sha256_digest
from support.http import describe, http
from support.oci import blob_url
from support.servers import Server, start_registry
from support.weights import safetensors

pytestmark = pytest.mark.clients

pytest.importorskip("oras.client", reason="the `oras` PyPI package is not installed")
import oras.client  # type: ignore[import-untyped]
import oras.decorator  # type: ignore[import-untyped]

SIZE = 8 << 20
TENSOR = 256 << 10  # 32 tensors: the fine-tune changes 2 of them
WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
MODEL_CONFIG = "application/vnd.cncf.model.config.v1+json"
NS = "chunkedclients"


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own with chunk dedup on for blobs from 1 MiB."""
    server = start_registry(tmp_path_factory.mktemp("chunked-clients"), "--workers", "1",
                            MOORAGE_CHUNK_DEDUP="1", MOORAGE_CHUNK_MIN_BLOB_SIZE=str(1 << 20))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(reg: Server) -> Iterator[oras.client.OrasClient]:
    # oras sleeps minutes between retries of a failed request: fail fast instead.
    saved = oras.decorator.time
    oras.decorator.time = types.SimpleNamespace(sleep=lambda _s: None)
    yield oras.client.OrasClient(hostname=reg.host, insecure=True, tls_verify=False)
    oras.decorator.time = saved


@pytest.fixture(scope="module")
def models(reg: Server, client: oras.client.OrasClient,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, bytes]]:
    """{name: (repository, weights)} of the base and its fine-tune, pushed with oras and
    chunked by the registry."""
    root = tmp_path_factory.mktemp("models")
    pushed: dict[str, tuple[str, bytes]] = {}
    for name, data in (("base", safetensors(SIZE, tensor_bytes=TENSOR)),
                       ("tuned", safetensors(SIZE, version=1, tensor_bytes=TENSOR))):
        repo = f"{NS}/{name}-{new_repo('m').rsplit('/', 1)[-1]}"
        folder = root / name
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(data)
        (folder / "config.json").write_text(json.dumps({"architecture": "test"}))
        r = client.push(target=f"{reg.host}/{repo}:v1",
                        files=[f"{folder / 'model.safetensors'}:{WEIGHT}"],
                        manifest_config=f"{folder / 'config.json'}:{MODEL_CONFIG}",
                        disable_path_validation=True, quiet=True)
        assert r.status_code == 201, describe(r)
        pushed[name] = (repo, data)
        # One at a time: the base is recorded before the fine-tune is chunked against it.
        wait_for_recipe(reg, repo, data)
    deadline = time.monotonic() + 180
    while dedup(reg)["saved"] < 0.8 * SIZE:
        assert time.monotonic() < deadline, f"the fine-tune was not chunked: {dedup(reg)}"
        time.sleep(0.5)
    return pushed


def dedup(reg: Server) -> dict:
    r = http.get(f"{reg.url}/api/v1/namespaces/{NS}/dedup")
    assert r.status_code == 200, describe(r)
    return r.json()


def recipe(reg: Server, repo: str, data: bytes) -> list[list]:
    r = http.get(f"{reg.url}/v2/{repo}/moorage/recipes/{sha256_digest(data)}")
    assert r.status_code == 200, describe(r)
    return r.json()["chunks"]


def wait_for_recipe(reg: Server, repo: str, data: bytes, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    url = f"{reg.url}/v2/{repo}/moorage/recipes/{sha256_digest(data)}"
    while http.get(url).status_code != 200:
        assert time.monotonic() < deadline, f"{repo}'s weights were never chunked"
        time.sleep(0.5)


def test_oras_pulls_chunked_weights_byte_identical(client: oras.client.OrasClient, reg: Server,
                                                   models: dict, tmp_path: Path) -> None:
    for name, (repo, data) in models.items():
        out = tmp_path / name
        files = client.pull(target=f"{reg.host}/{repo}:v1", outdir=str(out))
        assert [Path(f).name for f in files] == ["model.safetensors"]
        got = (out / "model.safetensors").read_bytes()
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(), name


def test_skopeo_copies_chunked_weights_to_a_dir(reg: Server, models: dict,
                                                tmp_path: Path) -> None:
    require_binary("skopeo")
    repo, data = models["tuned"]
    out = tmp_path / "dir"
    run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
         f"docker://{reg.host}/{repo}:v1", f"dir:{out}"])
    manifest = json.loads((out / "manifest.json").read_bytes())
    [layer] = manifest["layers"]
    assert layer["digest"] == sha256_digest(data) and layer["size"] == len(data)
    copied = (out / layer["digest"].split(":", 1)[1]).read_bytes()
    assert sha256_digest(copied) == sha256_digest(data)
    assert copied == data


def test_a_range_across_a_chunk_boundary_of_a_chunked_blob(reg: Server, models: dict) -> None:
    repo, data = models["tuned"]
    lengths = [n for _, n in recipe(reg, repo, data)]
    assert sum(lengths) == len(data) and len(lengths) > 20
    boundaries = [sum(lengths[:i]) for i in (1, len(lengths) // 2, len(lengths) - 1)]
    for b in boundaries:
        start, end = b - 1000, b + 999
        r = http.get(blob_url(reg, repo, sha256_digest(data)),
                     headers={"Range": f"bytes={start}-{end}"})
        assert r.status_code == 206, describe(r)
        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{len(data)}"
        assert r.content == data[start:end + 1]
