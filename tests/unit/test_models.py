"""The model index on a real embedded registry, without HTTP: the query language (units, metric
keys, errors naming the term), a safetensors header whose offsets lie is refused, a referrer
indexed before its model still lends its lineage, and search hides repositories the caller may
not pull."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import pytest

from moorage.auth.identity import Principal
from moorage.bootstrap import Registry
from moorage.models.params import format_count, parse_count
from moorage.models.processor import ModelsProcessor
from moorage.models.query import QueryInvalid, matches, parse_query
from moorage.models.safetensors import HeaderInvalid, read_tensors

from .conftest import make_registry
from .content import digest_of, push_blob

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MODELPACK = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"


@pytest.mark.parametrize(("text", "count"), [
    ("7B", 7e9), ("1.5B", 1.5e9), ("770M", 7.7e8), ("8.03 B", 8.03e9), ("1.0t", 1e12),
    ("100m", 1e8), ("124000000", 1.24e8), ("6.7b", 6.7e9)])
def test_parameter_counts_take_unit_letters(text: str, count: float) -> None:
    assert parse_count(text) == count


@pytest.mark.parametrize("text", ["seven", "7X", "", "B", "7BB", "-7B"])
def test_a_parameter_count_without_a_number_is_none(text: str) -> None:
    assert parse_count(text) is None


def test_format_count_is_the_short_form() -> None:
    assert [format_count(v) for v in (7e9, 1.5e9, 7.7e8, 512.0)] == ["7B", "1.5B", "770M",
                                                                      "512"]


def test_terms_compare_columns_params_and_metrics() -> None:
    model = {"family": "Llama", "params": 7e9, "quantization": "Q4_K_M",
             "metrics": {"accuracy": 0.913}}
    assert matches(parse_query("family=llama params>=7B quantization~q4 accuracy>0.9"), model)
    assert not matches(parse_query("params>7B"), model)
    assert not matches(parse_query("quantization=q4"), model)
    assert not matches(parse_query("f1>0"), model)  # no such metric: no match
    assert matches(parse_query("version!=1"), model)  # no version: differs from any
    assert matches(parse_query("'family=Llama' accuracy<=0.913"), model)


@pytest.mark.parametrize(("query", "message"), [
    ("family", "term 1 'family': expected KEY OP VALUE"),
    ("family=llama params>=lots", "term 2 'params>=lots': params takes a number"),
    ("family<llama", "family is text: use =, != or ~"),
    ("params~7B", "params is a number"),
    ("accuracy~0.9", "metric accuracy is a number"),
    ("accuracy>high", "metrics compare with numbers, not 'high'"),
    ("family=", "no value after '='"),
    ("params=>7B", "'=>' is not an operator"),
    ("family='llama", "does not split into terms"),
])
def test_a_bad_query_says_which_term_and_why(query: str, message: str) -> None:
    with pytest.raises(QueryInvalid) as caught:
        parse_query(query)
    assert message in caught.value.message
    assert caught.value.status == 400


def _header(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_a_header_whose_offsets_pass_the_end_is_refused() -> None:
    blob = _header({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 32]}}, bytes(16))
    with pytest.raises(HeaderInvalid, match="data_offsets outside the file"):
        read_tensors(lambda o, n: blob[o:o + n], 0, len(blob))


def test_a_header_longer_than_the_file_is_refused_before_it_is_read() -> None:
    reads: list[tuple[int, int]] = []
    blob = struct.pack("<Q", 1 << 40) + bytes(64)

    def read(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return blob[offset:offset + length]

    with pytest.raises(HeaderInvalid, match="header length"):
        read_tensors(read, 0, len(blob))
    assert reads == [(0, 8)]


def _push(registry: Registry, repo: str, doc: dict, tag: str | None = None) -> str:
    content = json.dumps(doc).encode()
    asyncio.run(registry.manifests.push(repo, tag or digest_of(content), content, OCI_MANIFEST,
                                        []))
    return digest_of(content)


def _model(registry: Registry, repo: str, family: str) -> dict:
    config = json.dumps({"descriptor": {"name": repo, "family": family},
                         "config": {"paramSize": "1B"}}).encode()
    weights = _header({"w": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}}, bytes(8))
    push_blob(registry, repo, config)
    push_blob(registry, repo, weights)
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": MODELPACK,
            "config": {"mediaType": MODELPACK_CONFIG, "digest": digest_of(config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.cncf.model.weight.v1.raw",
                        "digest": digest_of(weights), "size": len(weights),
                        "annotations": {"org.cncf.model.filepath": "w.safetensors"}}]}


def test_a_referrer_indexed_before_its_model_still_lends_its_lineage(registry: Registry
                                                                     ) -> None:
    processor = ModelsProcessor(registry)
    repo = "team/model"
    doc = _model(registry, repo, "llama")
    digest = _push(registry, repo, doc, "v1")
    empty = b"{}"
    push_blob(registry, repo, empty)
    referrer = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.moorage.training.v1+json",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                           "digest": digest_of(empty), "size": 2},
                "layers": [{"mediaType": "application/vnd.oci.empty.v1+json",
                            "digest": digest_of(empty), "size": 2}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": digest,
                            "size": len(json.dumps(doc))},
                "annotations": {"org.moorage.training.run": "run-9",
                                "org.moorage.metrics.bleu": "31.5",
                                "org.moorage.metrics.note": "not a number"}}
    ref_digest = _push(registry, repo, referrer)
    # The referrer's job runs first: no model row yet, nothing merged.
    assert processor.run({"repository": repo, "digest": ref_digest}) == {
        "lineage_for": digest, "merged": False}
    result = processor.run({"repository": repo, "digest": digest})
    assert (result["kind"], result["files"], result["tensors"]) == ("modelpack", 1, 1)
    card = registry.models.card(f"{repo}:v1", Principal("user", "cli", is_admin=True))
    assert (card["training_run"], card["metrics"]) == ("run-9", {"bleu": 31.5})
    assert card["lineage"]["runs"] == [{"id": "run-9", "url": None}]


def test_search_hides_models_of_repositories_the_caller_may_not_pull(tmp_path: Path) -> None:
    registry = make_registry(tmp_path / "r", auth=True, admin_password="admin-password-1")
    try:
        processor = ModelsProcessor(registry)
        for repo in ("open/m", "closed/m"):
            digest = _push(registry, repo, _model(registry, repo, "llama"), "v1")
            processor.run({"repository": repo, "digest": digest})
        from moorage.auth.identity import CLI

        admin = registry.auth.principal_from_claims("user", "admin")
        registry.admin.add_namespace(admin, "open", "public")
        registry.admin.add_namespace(admin, "closed", "private")
        outsider = Principal("anonymous", "anonymous")
        assert {m["repository"] for m in registry.models.search("family=llama", CLI)} == {
            "open/m", "closed/m"}
        assert [m["repository"] for m in registry.models.search("family=llama", outsider)] == [
            "open/m"]
        from moorage.oci.errors import AccessDenied

        with pytest.raises(AccessDenied):
            registry.models.card("closed/m:v1", outsider)
    finally:
        registry.close()
