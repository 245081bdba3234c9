"""Image size insights on the embedded registry: every advice rule on synthetic tar layers
(plain, gzip and zstd, with a whiteout), the bounded top-K, the path limit, the scan limits,
and the report's life with its manifest."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.oci import tar_of

from moorage.bootstrap import Registry
from moorage.insights import advice
from moorage.insights.analysis import Analysis, TopK
from moorage.jobs.queue import GiveUp
from moorage.scan.layers import Limits

from .conftest import make_registry
from .content import OCI_CONFIG, OCI_MANIFEST, digest_of, push, push_blob
from .layers_fixture import gz, zst

MB = 1_000_000
TAR = "application/vnd.oci.image.layer.v1.tar"
TAR_GZIP = TAR + "+gzip"
TAR_ZSTD = TAR + "+zstd"
PY = "usr/local/lib/python3.11/site-packages"


def push_image(registry: Registry, repository: str, layers: list[tuple[bytes, str]],
               tag: str = "v1") -> str:
    """Push config, layers (data, media type) and the manifest; the manifest's digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "repo": repository}).encode()
    push_blob(registry, repository, config)
    for data, _ in layers:
        push_blob(registry, repository, data)
    content = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": mt, "digest": digest_of(d), "size": len(d)}
                   for d, mt in layers],
    }).encode()
    push(registry, repository, tag, content)
    return digest_of(content)


# Layer 1 (plain tar): caches and dev files; layer 2 (gzip, small): a whiteout and a same-size
# copy; layer 3 (zstd, small): a smaller bundle over the big one.
LAYER1 = {
    "root/.cache/pip/http/ab/cd/wheel": 12 * MB,
    "root/.npm/_cacache/content-v2/x": 11 * MB,
    "var/lib/apt/lists/deb.debian.org_dists_bookworm_main_binary-amd64_Packages": 6 * MB,
    "var/cache/apt/archives/libfoo_1.0_amd64.deb": 7 * MB,
    "opt/conda/pkgs/numpy-1.26-py311/lib/libnumpy.so": 51 * MB,
    f"{PY}/numpy/__pycache__/core.cpython-311.pyc": 21 * MB,
    f"{PY}/scipy/tests/data/big.mat": 11 * MB,
    "usr/local/cuda-12.2/include/cublas_api.h": 60 * MB,
    "usr/local/cuda-12.2/lib64/libcublas_static.a": 41 * MB,
    "tmp/build.tar": 13 * MB,
    "app/bundle.js": 14 * MB,
    "app/same.txt": b"0123456789",
    "models/model.safetensors": 9 * MB,
}
LAYER2 = {"tmp/.wh.build.tar": b"", "app/same.txt": b"9876543210"}
LAYER3 = {"app/bundle.js": b"console.log(1)\n"}


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    built = make_registry(tmp_path_factory.mktemp("insights") / "registry")
    yield built
    built.close()


@pytest.fixture(scope="module")
def report(reg: Registry) -> dict[str, Any]:
    layers = [(tar_of(LAYER1), TAR), (gz(tar_of(LAYER2)), TAR_GZIP),
              (zst(tar_of(LAYER3)), TAR_ZSTD)]
    digest = push_image(reg, "team/app", layers)
    assert reg.insights.run("team/app", digest)["layers"] == 3
    return reg.insights.show("team/app", digest)


def advice_of(report: dict[str, Any], rule: str) -> list[tuple[int, int, str]]:
    return [(a["layer"], a["bytes"], a["message"]) for a in report["advice"] if a["rule"] == rule]


def test_layers_are_counted_compressed_and_uncompressed(report: dict[str, Any]) -> None:
    assert report["status"] == "done" and report["truncated"] is False
    layers = report["layers"]
    assert [x["media_type"] for x in layers] == [TAR, TAR_GZIP, TAR_ZSTD]
    assert [x["files"] for x in layers] == [13, 1, 1]
    sizes = {k: v if isinstance(v, int) else len(v) for k, v in LAYER1.items()}
    assert layers[0]["file_bytes"] == sum(sizes.values())
    assert layers[0]["uncompressed"] >= layers[0]["file_bytes"]
    assert layers[0]["compressed"] == len(tar_of(LAYER1))
    assert layers[1]["whiteouts"] == 1
    assert layers[2]["compressed"] < layers[2]["uncompressed"]  # zstd
    assert layers[0]["wasted"] == 13 * MB + 14 * MB + 10  # deleted, overwritten, same-size copy


def test_deleted_overwritten_and_duplicated_files(report: dict[str, Any]) -> None:
    assert report["deleted"] == {"files": 1, "bytes": 13 * MB, "largest": [
        {"path": "/tmp/build.tar", "size": 13 * MB, "layer": 1, "by_layer": 2}]}
    assert report["overwritten"]["largest"] == [
        {"path": "/app/bundle.js", "size": 14 * MB, "layer": 1, "by_layer": 3},
        {"path": "/app/same.txt", "size": 10, "layer": 1, "by_layer": 2}]
    assert report["duplicates"] == {"files": 1, "bytes": 10, "largest": [
        {"path": "/app/same.txt", "size": 10, "layer": 1, "by_layer": 2}]}


def test_pip_cache_advice(report: dict[str, Any]) -> None:
    assert advice_of(report, "pip_cache") == [(1, 12 * MB, (
        "pip cache left in layer 1 (/root/.cache/pip): 12 MB; pip install --no-cache-dir "
        "(or a cache mount) would save it"))]


def test_cuda_advice(report: dict[str, Any]) -> None:
    assert advice_of(report, "cuda_dev") == [(1, 101 * MB, (
        "101 MB of CUDA toolkit headers/static libs in layer 1 (/usr/local/cuda-12.2/include, "
        "*.a): a runtime base image would save it"))]


def test_apt_advice(report: dict[str, Any]) -> None:
    [(layer, size, text)] = advice_of(report, "apt_lists")
    assert (layer, size) == (1, 6 * MB)
    assert text.startswith("apt lists left in layer 1 (/var/lib/apt/lists): 6.0 MB")
    [(_, size, text)] = advice_of(report, "apt_cache")
    assert size == 7 * MB and "(/var/cache/apt): 7.0 MB" in text


def test_conda_npm_pycache_and_site_packages_advice(report: dict[str, Any]) -> None:
    [(_, size, text)] = advice_of(report, "conda_pkgs")
    assert size == 51 * MB and "conda package cache left in layer 1 (/opt/conda/pkgs)" in text
    [(_, size, text)] = advice_of(report, "npm_cache")
    assert size == 11 * MB and "npm cache left in layer 1 (/root/.npm): 11 MB" in text
    [(_, size, text)] = advice_of(report, "pycache")
    assert size == 21 * MB and f"site-packages in layer 1 (/{PY}): 21 MB" in text
    [(_, size, text)] = advice_of(report, "site_tests_docs")
    assert size == 11 * MB and f"(e.g. /{PY}/scipy/tests): 11 MB" in text


def test_deleted_and_overwritten_advice(report: dict[str, Any]) -> None:
    assert advice_of(report, "deleted_later") == [(1, 13 * MB, (
        "13 MB of files in layer 1 are deleted by layer 2 but still shipped (largest: "
        "/tmp/build.tar, 13 MB); remove them in the RUN that created them (or copy only what "
        "is needed from a build stage)"))]
    [(layer, size, text)] = advice_of(report, "overwritten_later")
    assert (layer, size) == (1, 14 * MB + 10)
    assert "are overwritten by layers 2, 3 but still shipped (largest: /app/bundle.js" in text


def test_huge_file_advice_names_model_weights(report: dict[str, Any]) -> None:
    assert advice_of(report, "huge_file") == []  # below the 1 GB default
    found = advice.huge_files(report["largest_files"], threshold=9 * MB)
    weights = [a for a in found if a["paths"] == ["/models/model.safetensors"]]
    assert [a["message"] for a in weights] == [(
        "9.0 MB file in layer 1 (/models/model.safetensors) looks like model weights baked "
        "into the image: shipping them as an OCI artifact (pulled or mounted on their own) "
        "would keep the image small and the weights shared")]
    other = [a for a in found if a["paths"] == ["/app/bundle.js"]]
    assert "single file in layer 1 (/app/bundle.js)" in other[0]["message"]


def test_advice_is_ordered_by_bytes(report: dict[str, Any]) -> None:
    sizes = [a["bytes"] for a in report["advice"]]
    assert sizes == sorted(sizes, reverse=True)
    assert report["advice"][0]["rule"] == "cuda_dev"


def test_human_sizes_are_decimal() -> None:
    assert [advice.human(n) for n in (512, 2_100_000_000, 600 * MB, 12_345, 9_990 * MB)] == [
        "512 B", "2.1 GB", "600 MB", "12 kB", "10.0 GB"]


def test_top_k_keeps_only_the_largest() -> None:
    top = TopK(3)
    for i, size in enumerate([5, 1, 9, 7, 3, 9, 2]):
        top.push(size, {"i": i})
    assert top.items() == [{"i": 2}, {"i": 5}, {"i": 3}]  # equal sizes: the first is kept


def test_the_largest_files_are_a_bounded_list() -> None:
    analysis = Analysis(Limits(), top=2)
    layer = tar_of({f"f{i}": i * 100 for i in range(1, 8)})
    analysis.layer({"digest": "sha256:x", "size": len(layer)}, [layer])
    assert analysis.report()["largest_files"] == [
        {"path": "/f7", "size": 700, "layer": 1}, {"path": "/f6", "size": 600, "layer": 1}]


def test_the_path_limit_truncates_tracking_not_counting() -> None:
    analysis = Analysis(Limits(), max_paths=3)
    lower = tar_of({f"d/f{i}": 10 for i in range(6)})
    upper = tar_of({"d/.wh..wh..opq": b""})  # hides everything below d/
    analysis.layer({"digest": "sha256:a", "size": len(lower)}, [lower])
    analysis.layer({"digest": "sha256:b", "size": len(upper)}, [upper])
    report = analysis.report()
    assert report["truncated"] is True
    assert report["layers"][0]["files"] == 6 and report["layers"][0]["file_bytes"] == 60
    assert report["deleted"]["files"] == 3 and report["deleted"]["bytes"] == 30


def test_a_layer_beyond_the_scan_limits_fails_the_report(tmp_path: Path) -> None:
    small = make_registry(tmp_path / "small", scan_max_entries=3)
    try:
        digest = push_image(small, "team/big", [(gz(tar_of({f"f{i}": 1 for i in range(5)})),
                                                 TAR_GZIP)])
        with pytest.raises(GiveUp, match="more than 3 tar entries"):
            small.insights.run("team/big", digest)
        shown = small.insights.show("team/big", digest)
        assert shown["status"] == "failed" and "scan_max_entries" in shown["error"]
    finally:
        small.close()


def test_shared_layers_and_the_report_goes_with_its_manifest(reg: Registry) -> None:
    from moorage.oci.digest import parse_digest
    from moorage.oci.errors import ManifestUnknown

    base = (gz(tar_of({"etc/base.txt": b"base layer"})), TAR_GZIP)
    first = push_image(reg, "team/one", [base])
    second = push_image(reg, "team/two", [base, (gz(tar_of({"app": b"x"})), TAR_GZIP)])
    reg.insights.run("team/two", second)
    shown = reg.insights.show("team/two", second)
    assert [x["shared_with"] for x in shown["layers"]] == [1, 0]
    assert shown["shared"] == {"layers": 1, "bytes": len(base[0])}
    reg.insights.run("team/one", first)  # before or after: shared is read as it is now
    assert reg.insights.show("team/one", first)["layers"][0]["shared_with"] == 1
    asyncio.run(reg.manifests.delete("team/two", parse_digest(second)))
    with pytest.raises(ManifestUnknown):
        reg.insights.show("team/two", second)
    assert reg.insights.show("team/one", first)["layers"][0]["shared_with"] == 0
