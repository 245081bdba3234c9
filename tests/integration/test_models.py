"""Models as first-class artifacts through a real server: ModelPack, KitOps and Docker-model
manifests pushed over HTTP are indexed by the post-push.models job (fields, files, tensors);
search answers exactly the expected models; a tensor's listed offset (safetensors and GGUF) is where a Range GET reads
its bytes; diff lists exactly the changed tensor; lineage links a fine-tune and its base; a
referrer attached later adds its training run."""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.http import describe, http
from support.models import (
    DOC_RAW,
    DOCKER_CONFIG,
    DOCKER_GGUF,
    DOCKER_LICENSE,
    KITOPS_CONFIG,
    WEIGHT_CONFIG_RAW,
    WEIGHT_RAW,
    WEIGHT_TAR,
    Layer,
    Safetensors,
    file_layer,
    gguf,
    manifest,
    modelpack,
    safetensors,
    tar_of,
    tensor,
)
from support.oci import Blob, Manifest, blob_url, push_tree
from support.servers import RegistryProcess, start_local

FAST = {"MOORAGE_MODELS_ON_PUSH": "1", "MOORAGE_JOB_POLL_INTERVAL": "0.1",
        "MOORAGE_EVENTS_POLL_INTERVAL": "0.1", "MOORAGE_JOB_BACKOFF_BASE": "0.2",
        "MOORAGE_JOB_BACKOFF_MAX": "0.5", "MOORAGE_UPLOAD_EXPIRY_INTERVAL": "0",
        "MOORAGE_GC_INTERVAL": "0"}
TIMEOUT = 90.0  # a loaded 2-core box runs the jobs late; indexing itself takes milliseconds
SHARDS = 20
CHANGED_SHARD = 7
RUN_KEY = "org.moorage.training.run"


@dataclass
class Zoo:
    """The models pushed once for this module, by repository."""

    reg: RegistryProcess
    data_dir: Path
    digests: dict[str, str] = field(default_factory=dict)
    shards: dict[str, list[Safetensors]] = field(default_factory=dict)
    tar_offsets: dict[str, int] = field(default_factory=dict)
    small_weights: Safetensors | None = None
    gguf_offsets: dict[str, int] = field(default_factory=dict)
    gguf_data: dict[str, bytes] = field(default_factory=dict)


def _shards(base: list[Safetensors] | None = None) -> list[Safetensors]:
    """20 safetensors shards, the first with three tensors of mixed dtypes; with `base`, a
    copy whose shard 7 has new data (1 tensor in 20 shards: the 5 % fine-tune)."""
    if base is not None:
        out = list(base)
        old = base[CHANGED_SHARD].tensors[0]
        out[CHANGED_SHARD] = safetensors([tensor(old.name, old.dtype, old.shape)])
        return out
    first = safetensors([tensor("model.embed.weight", "F32", [64, 256]),
                         tensor("model.norm.weight", "BF16", [256]),
                         tensor("model.scale", "F32", [1])], {"format": "pt"})
    rest = [safetensors([tensor(f"model.layers.{i}.weight", "F32", [256, 256])])
            for i in range(1, SHARDS)]
    return [first, *rest]


def _shard_path(i: int) -> str:
    return f"model-{i + 1:05d}-of-{SHARDS:05d}.safetensors"


def _llama(shards: list[Safetensors], annotations: dict[str, str], **fields: Any) -> Manifest:
    layers = [file_layer(s.data, WEIGHT_RAW, _shard_path(i)) for i, s in enumerate(shards)]
    layers += [file_layer(b'{"hidden_size": 256}', WEIGHT_CONFIG_RAW, "config.json"),
               file_layer(b"# Zoo llama\n", DOC_RAW, "README.md"),
               file_layer(b"Apache License 2.0\n", DOC_RAW, "LICENSE")]
    return modelpack(layers, annotations, family="llama", version="1.0",
                     licenses=["Apache-2.0"], architecture="transformer", format="safetensors",
                     paramSize="7B", precision="fp32", **fields)


def _tgz(files: dict[str, bytes]) -> bytes:
    return gzip.compress(tar_of(files)[0], mtime=0)


def wait_model(reg: RegistryProcess, repo: str, digest: str, timeout: float = TIMEOUT) -> dict:
    """The model card once the post-push.models job has indexed it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = http.get(f"{reg.url}/api/v1/models/{repo}/{digest}")
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 404, describe(r)
        time.sleep(0.2)
    raise AssertionError(f"{repo}@{digest} was not indexed in {timeout}s")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zoo]:
    """One server (SQLite + files, so the CLI can open its data dir) with six models pushed."""
    data = tmp_path_factory.mktemp("models") / "data"
    reg = start_local(data, "--workers", "1", **FAST)
    z = Zoo(reg, data)
    try:
        base_shards = _shards()
        tuned_shards = _shards(base_shards)
        z.shards = {"models/base": base_shards, "models/tuned": tuned_shards}
        base = _llama(base_shards, {"org.moorage.metrics.accuracy": "0.85",
                                    "org.moorage.metrics.loss": "1.2", RUN_KEY: "run-base"},
                      name="zoo-base")
        z.digests["models/base"] = push_tree(reg, "models/base", base, "base")
        tuned = _llama(tuned_shards, {
            "org.moorage.metrics.accuracy": "0.93", RUN_KEY: "run-42",
            "org.moorage.training.run.url": "https://mlflow.example/runs/42",
            "org.moorage.dataset.digest": "sha256:" + "d" * 64,
            "org.opencontainers.image.base.digest": z.digests["models/base"],
            "org.opencontainers.image.base.name": "models/base:base"},
            name="zoo-tuned", quantization="q4")
        z.digests["models/tuned"] = push_tree(reg, "models/tuned", tuned, "tuned")

        # No README, no license; the weights in an uncompressed tar layer.
        z.small_weights = safetensors([tensor("w", "BF16", [512, 512]), tensor("b", "F32", [512])])
        body, offsets = tar_of({"weights/model.safetensors": z.small_weights.data,
                                "weights/tokenizer.json": b'{"vocab": {}}'})
        z.tar_offsets = offsets
        small = modelpack([Layer(Blob(body, WEIGHT_TAR))],
                          {"org.moorage.metrics.accuracy": "0.95"}, name="zoo-small",
                          family="qwen2", paramSize="1.5B", precision="bf16",
                          format="safetensors")
        z.digests["models/small"] = push_tree(reg, "models/small", small, "v1")

        kitfile = {"manifestVersion": "1.0.0",
                   "package": {"name": "sentiment", "version": "2.0.0", "authors": ["ML Team"],
                               "license": "MIT"},
                   "model": {"name": "sentiment-classifier", "path": "model/weights.bin",
                             "framework": "pytorch", "version": "2.0.0",
                             "parameters": {"paramSize": "770M"},
                             "parts": [{"path": "tokenizer/"}]},
                   "datasets": [{"name": "train", "path": "data/train.csv"}],
                   "docs": [{"path": "README.md"}]}
        kit_layers = [Layer(Blob(_tgz({name: data}), f"application/vnd.kitops.modelkit.{kind}"
                                 ".v1.tar+gzip"))
                      for kind, name, data in (
                          ("model", "model/weights.bin", b"\x00" * 4096),
                          ("modelpart", "tokenizer/vocab.txt", b"a\nb\n"),
                          ("dataset", "data/train.csv", b"text,label\nhi,1\n"),
                          ("docs", "README.md", b"# Sentiment\n"))]
        kit = manifest(json.dumps(kitfile).encode(), KITOPS_CONFIG, kit_layers)
        z.digests["models/kit"] = push_tree(reg, "models/kit", kit, "2.0.0")

        docker_config = {"config": {"format": "gguf", "quantization": "Q4_K_M",
                                    "parameters": "8.03 B", "architecture": "llama",
                                    "size": "4.58 GiB"},
                         "descriptor": {"created": "2025-01-01T00:00:00Z"}}
        z.gguf_data = {"token_embd.weight": os.urandom(18 * 64),  # Q4_0: 18 bytes / 32
                       "output_norm.weight": os.urandom(4 * 64)}  # F32
        weights, z.gguf_offsets = gguf(
            [("token_embd.weight", 2, [64, 32], z.gguf_data["token_embd.weight"]),
             ("output_norm.weight", 0, [64], z.gguf_data["output_norm.weight"])],
            {"general.architecture": "llama", "general.name": "zoo-gguf",
             "general.alignment": 32, "tokenizer.ggml.tokens": ["<s>", "</s>", "hello"] * 500})
        docker = manifest(json.dumps(docker_config).encode(), DOCKER_CONFIG,
                          [Layer(Blob(weights, DOCKER_GGUF)),
                           Layer(Blob(b"MIT License\n", DOCKER_LICENSE))])
        z.digests["models/docker"] = push_tree(reg, "models/docker", docker, "q4")

        # A config that is not JSON: the push succeeds (push_tree asserts 201), the row says why.
        broken = modelpack([file_layer(b"\x00" * 64, WEIGHT_RAW, "w.bin")],
                           config=b'{"descriptor": ')
        z.digests["models/broken"] = push_tree(reg, "models/broken", broken, "v1")

        for repo, digest in z.digests.items():
            wait_model(reg, repo, digest)
        yield z
    finally:
        reg.stop()


def card(z: Zoo, repo: str) -> dict:
    r = http.get(f"{z.reg.url}/api/v1/models/{repo}/{z.digests[repo]}")
    assert r.status_code == 200, describe(r)
    return r.json()


def files(z: Zoo, repo: str) -> list[dict]:
    r = http.get(f"{z.reg.url}/api/v1/models/{repo}/{z.digests[repo]}/files")
    assert r.status_code == 200, describe(r)
    return r.json()["files"]


def search(z: Zoo, query: str) -> set[str]:
    r = http.get(f"{z.reg.url}/api/v1/models", params={"q": query})
    assert r.status_code == 200, describe(r)
    return {m["repository"] for m in r.json()["models"]}


def cli(z: Zoo, *args: str) -> Any:
    from typer.testing import CliRunner

    from moorage.cli import app

    return CliRunner().invoke(app, [*args, "--data-dir", str(z.data_dir)])


def range_get(z: Zoo, repo: str, layer: str, offset: int, length: int) -> bytes:
    r = http.get(blob_url(z.reg, repo, layer),
                 headers={"Range": f"bytes={offset}-{offset + length - 1}"})
    assert r.status_code == 206, describe(r)
    return r.content


def test_a_modelpack_model_is_indexed_with_its_fields(zoo: Zoo) -> None:
    c = card(zoo, "models/tuned")
    expected = {"kind": "modelpack", "name": "zoo-tuned", "family": "llama", "version": "1.0",
                "architecture": "transformer", "params": 7e9, "precision": "fp32",
                "quantization": "q4", "format": "safetensors", "license": "Apache-2.0",
                "training_run": "run-42", "parse_error": None,
                "dataset_digest": "sha256:" + "d" * 64}
    assert {k: c[k] for k in expected} == expected
    assert c["metrics"] == {"accuracy": 0.93}
    assert c["tags"] == ["tuned"]
    assert c["annotations"][RUN_KEY] == "run-42"
    paths = [f["path"] for f in c["files"]]
    assert sorted(paths) == sorted([_shard_path(i) for i in range(SHARDS)]
                                   + ["config.json", "README.md", "LICENSE"])


def test_a_modelpack_without_readme_or_license_lists_the_members_of_its_tar_layer(zoo: Zoo
                                                                                  ) -> None:
    c = card(zoo, "models/small")
    assert (c["name"], c["family"], c["params"], c["license"], c["parse_error"]) == (
        "zoo-small", "qwen2", 1.5e9, None, None)
    listed = {f["path"]: f for f in files(zoo, "models/small")}
    assert set(listed) == {"weights/model.safetensors", "weights/tokenizer.json"}
    weights = listed["weights/model.safetensors"]
    assert weights["layer_offset"] == zoo.tar_offsets["weights/model.safetensors"]
    assert weights["size"] == len(zoo.small_weights.data)
    start = weights["layer_offset"]
    got = {t["name"]: (t["dtype"], t["shape"], t["offset"], t["length"])
           for t in weights["tensors"]}
    assert got == {t.name: (t.dtype, t.shape, start + t.file_offset, len(t.data))
                   for t in zoo.small_weights.tensors}
    w = zoo.small_weights.tensor("w")
    assert range_get(zoo, "models/small", weights["layer_digest"], start + w.file_offset,
                     len(w.data)) == w.data


def test_tensor_offsets_match_the_header_and_a_range_get_returns_one_tensor(zoo: Zoo) -> None:
    listed = {f["path"]: f for f in files(zoo, "models/base")}
    for i, shard in enumerate(zoo.shards["models/base"]):
        f = listed[_shard_path(i)]
        assert (f["layer_offset"], f["size"], f["media_type"]) == (0, len(shard.data),
                                                                    WEIGHT_RAW)
        assert [(t["name"], t["dtype"], t["shape"], t["offset"], t["length"])
                for t in f["tensors"]] == [(t.name, t.dtype, t.shape, t.file_offset, len(t.data))
                                           for t in shard.tensors]
    first = listed[_shard_path(0)]
    norm = zoo.shards["models/base"][0].tensor("model.norm.weight")
    (listed_norm,) = [t for t in first["tensors"] if t["name"] == norm.name]
    assert range_get(zoo, "models/base", first["layer_digest"], listed_norm["offset"],
                     listed_norm["length"]) == norm.data
    assert listed["README.md"]["tensors"] == []


def test_a_kitops_modelkit_takes_its_paths_and_fields_from_the_kitfile(zoo: Zoo) -> None:
    c = card(zoo, "models/kit")
    assert {k: c[k] for k in ("kind", "name", "version", "format", "license", "params")} == {
        "kind": "kitops", "name": "sentiment-classifier", "version": "2.0.0",
        "format": "pytorch", "license": "MIT", "params": 7.7e8}
    assert c["details"]["authors"] == ["ML Team"]
    assert {(f["path"], f["layer_offset"]) for f in c["files"]} == {
        ("model/weights.bin", None), ("tokenizer", None), ("data/train.csv", None),
        ("README.md", None)}


def test_a_docker_model_is_indexed_from_its_config(zoo: Zoo) -> None:
    c = card(zoo, "models/docker")
    assert {k: c[k] for k in ("kind", "format", "quantization", "architecture", "params")} == {
        "kind": "docker", "format": "gguf", "quantization": "Q4_K_M", "architecture": "llama",
        "params": 8.03e9}
    assert sorted((f["media_type"], f["layer_offset"]) for f in c["files"]) == [
        (DOCKER_GGUF, 0), (DOCKER_LICENSE, 0)]
    assert "LICENSE" in [f["path"] for f in c["files"]]
    assert c["name"] == "zoo-gguf"  # from the GGUF metadata: the config has no name
    (weights,) = [f for f in files(zoo, "models/docker") if f["media_type"] == DOCKER_GGUF]
    assert [(t["name"], t["dtype"], t["shape"], t["offset"], t["length"])
            for t in weights["tensors"]] == [
        ("token_embd.weight", "Q4_0", [64, 32], zoo.gguf_offsets["token_embd.weight"], 18 * 64),
        ("output_norm.weight", "F32", [64], zoo.gguf_offsets["output_norm.weight"], 4 * 64)]
    norm = weights["tensors"][1]
    assert range_get(zoo, "models/docker", weights["layer_digest"], norm["offset"],
                     norm["length"]) == zoo.gguf_data["output_norm.weight"]


def test_a_malformed_config_gives_a_row_with_parse_error(zoo: Zoo) -> None:
    c = card(zoo, "models/broken")
    assert c["kind"] == "modelpack"
    assert c["parse_error"].startswith("config: ")
    assert [f["path"] for f in c["files"]] == ["w.bin"]


@pytest.mark.parametrize(("query", "expected"), [
    ("family=llama", {"models/base", "models/tuned"}),
    ("family=LLAMA params>=7B", {"models/base", "models/tuned"}),
    ("params>=7B", {"models/base", "models/tuned", "models/docker"}),
    ("params<1B", {"models/kit"}),
    ("params>=1.5B params<7000M", {"models/small"}),
    ("accuracy>0.9", {"models/tuned", "models/small"}),
    ("family=llama params>=7B quantization=q4 accuracy>0.9", {"models/tuned"}),
    ("quantization~q4", {"models/tuned", "models/docker"}),
    ("format=gguf", {"models/docker"}),
    ("kind=kitops", {"models/kit"}),
    ("license~apache", {"models/base", "models/tuned"}),
    ("run=run-42", {"models/tuned"}),
    ("loss<=1.2 accuracy!=0.93", {"models/base"}),
    ("", {"models/base", "models/tuned", "models/small", "models/kit", "models/docker",
          "models/broken"}),
])
def test_search_answers_exactly_the_expected_models(zoo: Zoo, query: str,
                                                    expected: set[str]) -> None:
    assert search(zoo, query) == expected


@pytest.mark.parametrize(("query", "reason"), [
    ("params>=seven", "params takes a number"),
    ("family", "expected KEY OP VALUE"),
    ("family>llama", "family is text"),
    ("accuracy>high", "metrics compare with numbers"),
    ("family=", "no value"),
])
def test_a_bad_query_is_400_with_the_reason(zoo: Zoo, query: str, reason: str) -> None:
    r = http.get(f"{zoo.reg.url}/api/v1/models", params={"q": query})
    assert r.status_code == 400, describe(r)
    (error,) = r.json()["errors"]
    assert reason in error["message"]


def test_the_cli_searches_and_exits_2_on_a_bad_query(zoo: Zoo) -> None:
    ok = cli(zoo, "models", "search", "accuracy>0.9", "--json")
    assert ok.exit_code == 0, ok.output
    assert {m["repository"] for m in json.loads(ok.stdout)["models"]} == {"models/tuned",
                                                                          "models/small"}
    bad = cli(zoo, "models", "search", "params>=lots")
    assert bad.exit_code == 2
    assert "params takes a number" in bad.output


def test_diff_of_a_5_percent_fine_tune_lists_exactly_the_changed_tensor(zoo: Zoo) -> None:
    result = cli(zoo, "models", "diff", "models/base:base", "models/tuned:tuned", "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    changed = zoo.shards["models/base"][CHANGED_SHARD].tensors[0].name
    assert d["files"]["changed"] == [_shard_path(CHANGED_SHARD)]
    assert (d["files"]["added"], d["files"]["removed"]) == ([], [])
    assert d["tensors"]["changed"] == [{"name": changed, "reason": "data",
                                        "file": _shard_path(CHANGED_SHARD)}]
    assert (d["tensors"]["added"], d["tensors"]["removed"]) == ([], [])
    assert d["tensors"]["unchanged"] == SHARDS + 2 - 1
    text = cli(zoo, "models", "diff", "models/base:base", "models/tuned:tuned")
    assert f"tensor changed: {changed}" in text.stdout


def test_lineage_links_the_fine_tune_and_its_base(zoo: Zoo) -> None:
    tuned = card(zoo, "models/tuned")["lineage"]
    assert tuned["base"] == {"digest": zoo.digests["models/base"], "name": "models/base:base",
                             "models": [{"repository": "models/base",
                                         "digest": zoo.digests["models/base"],
                                         "name": "zoo-base", "tags": ["base"]}]}
    assert tuned["runs"] == [{"id": "run-42", "url": "https://mlflow.example/runs/42"}]
    base = card(zoo, "models/base")["lineage"]
    assert base["base"] is None
    assert base["fine_tunes"] == [{"repository": "models/tuned",
                                   "digest": zoo.digests["models/tuned"], "name": "zoo-tuned",
                                   "tags": ["tuned"]}]
    shown = cli(zoo, "models", "show", "models/base:base")
    assert shown.exit_code == 0, shown.output
    assert f"fine-tuned into: models/tuned@{zoo.digests['models/tuned']}" in shown.stdout


def test_a_referrer_attached_later_adds_its_training_run(zoo: Zoo) -> None:
    before = card(zoo, "models/small")
    assert before["training_run"] is None
    subject = Manifest(http.get(f"{zoo.reg.url}/v2/models/small/manifests/v1", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"}).content,
        "application/vnd.oci.image.manifest.v1+json")
    assert subject.digest == zoo.digests["models/small"]
    referrer = manifest(b"{}", "application/vnd.oci.empty.v1+json",
                        [Layer(Blob(b"{}", "application/vnd.moorage.training.v1+json"))],
                        "application/vnd.moorage.training.v1+json",
                        {RUN_KEY: "run-7", "org.moorage.metrics.f1": "0.88"}, subject=subject)
    push_tree(zoo.reg, "models/small", referrer)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        after = card(zoo, "models/small")
        if after["training_run"] == "run-7":
            break
        time.sleep(0.2)
    assert after["training_run"] == "run-7"
    assert after["metrics"] == {"accuracy": 0.95, "f1": 0.88}
    assert search(zoo, "run=run-7 f1>0.8") == {"models/small"}


def test_an_unknown_model_is_404_manifest_unknown(zoo: Zoo) -> None:
    r = http.get(f"{zoo.reg.url}/api/v1/models/models/base/sha256:{'0' * 64}")
    assert r.status_code == 404, describe(r)
    assert r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
