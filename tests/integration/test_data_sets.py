"""Suite B data groups, each run end-to-end like the conformance program does:
push (blobs via rotating upload flows, manifests by digest child-first, then tags) →
tag-list (all tags; `?last=<middle>` without `n`) → head → pull → referrers → delete
(tags, manifests in reverse order, blobs; each followed by a HEAD that must be 404).

`bad-digest-image` is in test_manifests.py
(test_put_by_digest_with_body_not_matching_is_400_digest_invalid).
"""

from __future__ import annotations

import base64
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from support.http import describe, http, resolve
from support.oci import (
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_ND,
    OCI_MANIFEST,
    UPLOADERS,
    Blob,
    Manifest,
    all_referrers,
    assert_error,
    assert_manifest_served,
    assert_referrer_listed,
    blob_url,
    digest_of,
    dumps,
    get_manifest,
    header_list,
    image_config,
    list_tags,
    make_artifact,
    make_image,
    make_index,
    manifest_url,
    push_blob,
    put_manifest,
    random_bytes,
    referrers,
    tar_layer,
)


@dataclass
class DataSet:
    manifests: list[Manifest]  # push order: children first
    tags: dict[str, Manifest] = field(default_factory=dict)
    referrers: dict[str, list[Manifest]] = field(default_factory=dict)  # subject digest -> refs
    skip_blobs: set[str] = field(default_factory=set)  # never uploaded (non-distributable…)
    skip_manifests: set[str] = field(default_factory=set)  # referenced but never pushed
    tag_params: bool = False  # push tags as ?tag= on the PUT by digest

    def blobs(self) -> list[Blob]:
        seen: dict[str, Blob] = {}
        for m in self.manifests:
            for b in m.blobs:
                if b.digest not in self.skip_blobs:
                    seen.setdefault(b.digest, b)
        return list(seen.values())


# ----------------------------------------------------------------------------------------------
# builders


def ds_image() -> DataSet:
    m = make_image(layers=2)
    return DataSet([m], {"image": m})


def ds_image_uncompressed() -> DataSet:
    m = make_image(layers=2, compress=False)
    return DataSet([m], {"image-uncompressed": m})


def ds_large_manifest() -> DataSet:
    m = make_image(annotations={f"org.example.a{i}": "x" * 10_000 for i in range(390)})
    assert 3_900_000 < m.size < 4 * 1024 * 1024
    return DataSet([m], {"large-manifest": m})


def ds_index() -> DataSet:
    a, b = make_image(), make_image()
    idx = make_index([a, b])
    return DataSet([a, b, idx], {"index": idx})


def ds_nested_index() -> DataSet:
    a, b, c, d = (make_image() for _ in range(4))
    i1, i2 = make_index([a, b]), make_index([c, d])
    top = make_index([i1, i2], platforms=False)
    return DataSet([a, b, c, d, i1, i2, top], {"index-of-index": top})


def ds_empty_index() -> DataSet:
    idx = make_index([])
    return DataSet([idx], {"empty-index": idx})


def ds_artifact() -> DataSet:
    m = make_artifact(artifact_type="application/vnd.example.artifact")
    return DataSet([m], {"artifact": m})


def ds_artifact_index() -> DataSet:
    a = make_artifact(artifact_type="application/vnd.example.artifact.part")
    b = make_artifact(artifact_type="application/vnd.example.artifact.part")
    idx = make_index([a, b], artifact_type="application/vnd.example.artifact.index")
    return DataSet([a, b, idx], {"artifact-index": idx})


def ds_artifact_without_layers() -> DataSet:
    m = make_artifact(
        artifact_type="application/vnd.example.nolayers", layers=[Blob(EMPTY_JSON, OCI_EMPTY)]
    )
    return DataSet([m], {"artifact-without-layers": m})


def ds_artifacts_with_subject() -> DataSet:
    subject = make_image()
    refs = [
        make_artifact(
            artifact_type=f"application/vnd.example.sig.{i % 2}",
            subject=subject,
            annotations={"org.example.unique": os.urandom(8).hex(), "org.example.n": str(i)},
        )
        for i in range(3)
    ]
    tags = {"image": subject, "tagged-artifact1": refs[0], "tagged-artifact2": refs[1]}
    return DataSet([subject, *refs], tags, {subject.digest: refs})


def ds_index_with_subject() -> DataSet:
    a, b = make_image(), make_image()
    subject = make_index([a, b])
    parts = [make_artifact(artifact_type="application/vnd.example.sbom") for _ in range(2)]
    ref = make_index(
        parts,
        artifact_type="application/vnd.example.sbom.index",
        subject=subject,
        annotations={"org.example.kind": "sbom"},
        platforms=False,
    )
    return DataSet([a, b, subject, *parts, ref], {"index": subject}, {subject.digest: [ref]})


def ds_missing_subject() -> DataSet:
    ghost = make_image()
    ref = make_artifact(subject=ghost, annotations={"org.example.ghost": "yes"})
    return DataSet([ref], {"missing-subject": ref}, {ghost.digest: [ref]})


def ds_data_field() -> DataSet:
    config = Blob(image_config(), OCI_CONFIG)
    layer = Blob(tar_layer(), OCI_LAYER_GZIP)
    body = dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(data=base64.b64encode(config.data).decode()),
            "layers": [layer.descriptor(data=base64.b64encode(layer.data).decode())],
        }
    )
    m = Manifest(body, OCI_MANIFEST, blobs=[config, layer])
    idx = make_index([m], extra={})
    doc = idx.json
    doc["manifests"][0]["data"] = base64.b64encode(m.body).decode()
    idx = Manifest(dumps(doc), OCI_INDEX, children=[m])
    return DataSet([m, idx], {"data-field": idx})


def ds_non_distributable_layers() -> DataSet:
    nd = [Blob(random_bytes(200), OCI_LAYER_ND) for _ in range(2)]
    normal = Blob(tar_layer(), OCI_LAYER_GZIP)
    m = make_image(layer_blobs=[nd[0], normal, nd[1]])
    doc = m.json
    for i in (0, 2):
        doc["layers"][i]["urls"] = [f"https://example.com/layers/{doc['layers'][i]['digest']}"]
    m = Manifest(dumps(doc), OCI_MANIFEST, blobs=m.blobs)
    return DataSet([m], {"non-distributable-layers": m}, skip_blobs={b.digest for b in nd})


def ds_custom_fields() -> DataSet:
    config = Blob(image_config(**{"org.example.custom": {"x": [1, 2]}}), OCI_CONFIG)
    a = make_image(config=config, extra={"customTopLevel": "manifest", "n": 1.5})
    b = make_image(extra={"customTopLevel": {"deep": [None, True]}})
    idx = make_index([a, b], extra={"customIndexField": ["a", "b"]})
    return DataSet([a, b, idx], {"custom-fields": idx})


def ds_no_layers() -> DataSet:
    m = make_image(layers=0)
    return DataSet([m], {"no-layers": m})


def ds_sha512() -> DataSet:
    a, b = make_image(algo="sha512"), make_image(algo="sha512")
    idx = make_index([a, b], algo="sha512")
    return DataSet([a, b, idx], {})  # pushed by digest only


def ds_tag_param_sha256() -> DataSet:
    m = make_image()
    return DataSet([m], {"tag-param-1": m, "tag-param-2": m}, tag_params=True)


def ds_tag_param_sha512() -> DataSet:
    m = make_image(algo="sha512")
    return DataSet([m], {"tag-param-1": m, "tag-param-2": m}, tag_params=True)


DATA_SETS: dict[str, Callable[[], DataSet]] = {
    "image": ds_image,
    "image-uncompressed": ds_image_uncompressed,
    "large-manifest": ds_large_manifest,
    "index": ds_index,
    "nested-index": ds_nested_index,
    "empty-index": ds_empty_index,
    "artifact": ds_artifact,
    "artifact-index": ds_artifact_index,
    "artifact-without-layers": ds_artifact_without_layers,
    "artifacts-with-subject": ds_artifacts_with_subject,
    "index-with-subject": ds_index_with_subject,
    "missing-subject": ds_missing_subject,
    "data-field": ds_data_field,
    "non-distributable-layers": ds_non_distributable_layers,
    "custom-fields": ds_custom_fields,
    "no-layers": ds_no_layers,
    "sha512": ds_sha512,
    "tag-param-sha256": ds_tag_param_sha256,
    "tag-param-sha512": ds_tag_param_sha512,
}


# ----------------------------------------------------------------------------------------------
# the steps


def step_push(registry, repo: str, ds: DataSet) -> None:
    methods = itertools.cycle(list(UPLOADERS))
    for b in ds.blobs():
        push_blob(registry, repo, b.data, b.algo, next(methods))
    tag_params: dict[str, list[str]] = {}
    if ds.tag_params:
        for tag, m in ds.tags.items():
            tag_params.setdefault(m.digest, []).append(tag)
    for m in ds.manifests:
        if m.digest in ds.skip_manifests:
            continue
        params = {"tag": tag_params[m.digest]} if m.digest in tag_params else None
        r = put_manifest(registry, repo, m.digest, m.body, m.media_type, params)
        assert r.status_code == 201, describe(r)
        assert r.headers.get("Location"), describe(r)
        assert r.headers.get("Docker-Content-Digest") == m.digest, describe(r)
        subject = m.json.get("subject")
        if subject:
            assert r.headers.get("OCI-Subject") == subject["digest"], describe(r)
        if params:
            assert sorted(header_list(r, "OCI-Tag")) == sorted(params["tag"]), describe(r)
        g = http.get(resolve(r), headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"})
        assert_manifest_served(g, m.body, m.media_type, m.digest)
    if not ds.tag_params:
        for tag, m in ds.tags.items():
            r = put_manifest(registry, repo, tag, m.body, m.media_type)
            assert r.status_code == 201, describe(r)
            assert r.headers.get("Docker-Content-Digest") == m.digest, describe(r)


def step_tag_list(registry, repo: str, ds: DataSet) -> None:
    r = list_tags(registry, repo)
    if not ds.tags:
        assert r.status_code in (200, 404), describe(r)
        if r.status_code == 200:
            assert not r.json().get("tags"), describe(r)
        return
    assert r.status_code == 200, describe(r)
    assert r.json()["name"] == repo, describe(r)
    assert sorted(r.json()["tags"]) == sorted(ds.tags), describe(r)
    if len(ds.tags) >= 2:
        tags = sorted(ds.tags)
        middle = tags[len(tags) // 2]
        r = list_tags(registry, repo, last=middle)
        assert r.status_code == 200, describe(r)
        assert r.json()["tags"] == [t for t in tags if t > middle], describe(r)


def _refs(ds: DataSet) -> list[tuple[str, Manifest]]:
    refs = [(m.digest, m) for m in ds.manifests if m.digest not in ds.skip_manifests]
    return refs + [(tag, m) for tag, m in ds.tags.items()]


def step_head(registry, repo: str, ds: DataSet) -> None:
    for ref, m in _refs(ds):
        r = get_manifest(registry, repo, ref, "HEAD")
        assert_manifest_served(r, m.body, m.media_type, m.digest, head=True)
    for b in ds.blobs():
        r = http.head(blob_url(registry, repo, b.digest))
        assert r.status_code == 200, describe(r)
        assert r.headers.get("Content-Length") == str(len(b.data)), describe(r)
        assert r.headers.get("Docker-Content-Digest") == b.digest, describe(r)


def step_pull(registry, repo: str, ds: DataSet) -> None:
    for ref, m in _refs(ds):
        assert_manifest_served(get_manifest(registry, repo, ref), m.body, m.media_type, m.digest)
    for b in ds.blobs():
        r = http.get(blob_url(registry, repo, b.digest))
        assert r.status_code == 200 and r.content == b.data, describe(r)
        assert r.headers.get("Docker-Content-Digest") == b.digest, describe(r)


def step_referrers(registry, repo: str, ds: DataSet) -> None:
    for subject, refs in ds.referrers.items():
        listed = all_referrers(registry, repo, subject)
        assert len(listed) == len(refs), listed
        for m in refs:
            assert_referrer_listed(listed, m)
        for atype in {d.get("artifactType") for d in listed if d.get("artifactType")}:
            r = referrers(registry, repo, subject, artifactType=atype)
            assert r.status_code == 200, describe(r)
            assert r.headers.get("OCI-Filters-Applied") == "artifactType", describe(r)
            got = r.json()["manifests"]
            assert got and all(d.get("artifactType") == atype for d in got), describe(r)
            assert len(got) == sum(1 for d in listed if d.get("artifactType") == atype)


def step_delete(registry, repo: str, ds: DataSet) -> None:
    for tag in ds.tags:
        r = http.delete(manifest_url(registry, repo, tag))
        assert r.status_code == 202, describe(r)
        assert_error(get_manifest(registry, repo, tag, "HEAD"), 404)
    for m in reversed(ds.manifests):
        if m.digest in ds.skip_manifests:
            continue
        r = http.delete(manifest_url(registry, repo, m.digest))
        assert r.status_code == 202, describe(r)
        assert_error(get_manifest(registry, repo, m.digest, "HEAD"), 404)
        assert_error(get_manifest(registry, repo, m.digest), 404, "MANIFEST_UNKNOWN")
    for b in ds.blobs():
        r = http.delete(blob_url(registry, repo, b.digest))
        assert r.status_code == 202, describe(r)
        assert_error(http.head(blob_url(registry, repo, b.digest)), 404)


def run_data_set(registry, repo: str, ds: DataSet) -> None:
    step_push(registry, repo, ds)
    step_tag_list(registry, repo, ds)
    step_head(registry, repo, ds)
    step_pull(registry, repo, ds)
    step_referrers(registry, repo, ds)
    step_delete(registry, repo, ds)


@pytest.mark.parametrize("name", list(DATA_SETS))
def test_data_set_push_list_head_pull_referrers_delete(registry, repo, name):
    run_data_set(registry, repo, DATA_SETS[name]())


# ----------------------------------------------------------------------------------------------
# sparse (only with --allow-sparse)


def test_sparse_data_set_is_accepted_with_allow_sparse(sparse_registry, repo):
    """Suite B `sparse`: an index whose children were not all pushed and a manifest whose
    blobs were not all pushed."""
    present, absent_child = make_image(), make_image()
    missing_blobs = make_image(layers=2)
    idx = make_index([present, absent_child, missing_blobs])
    ds = DataSet(
        [present, absent_child, missing_blobs, idx],
        {"sparse": idx},
        skip_blobs={b.digest for b in absent_child.blobs} | {missing_blobs.blobs[2].digest},
        skip_manifests={absent_child.digest},
    )
    run_data_set(sparse_registry, repo, ds)


def test_sparse_manifest_without_any_blob_is_accepted_with_allow_sparse(sparse_registry, repo):
    m = make_image(layers=3)
    r = put_manifest(sparse_registry, repo, "no-blobs", m.body, m.media_type)
    assert r.status_code == 201, describe(r)
    assert_manifest_served(get_manifest(sparse_registry, repo, "no-blobs"), m.body, m.media_type,
                           m.digest)  # fmt: skip
    # and the blobs are still unknown
    for b in m.blobs:
        assert_error(http.head(blob_url(sparse_registry, repo, b.digest)), 404)


def test_sparse_registry_still_checks_digests(sparse_registry, repo):
    m = make_image()
    bad = m.body + b" "
    r = put_manifest(sparse_registry, repo, m.digest, bad, m.media_type)
    assert_error(r, 400, "DIGEST_INVALID")
    assert digest_of(bad) != m.digest
