"""Manifest push / pull: headers, verbatim storage, validation, limits, tags, subject.

Suite A: Pull #4–#5, #11–#19; Push #47–#50; the OCI-Subject part of Discovery #58.
Suite B: `manifest-by-digest`/`manifest-by-tag` push+pull, `manifest-head-*`,
`missing-manifest`, `invalid-digest-format`, `bad-digest-image`, tag params, subject.
(The data-set shapes — index, artifacts, sha512, … — are in test_data_sets.py.)
"""

from __future__ import annotations

import base64
import json

import pytest
from support.http import describe, http, resolve
from support.oci import (
    ACCEPT_MANIFESTS,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Blob,
    assert_error,
    assert_manifest_served,
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
    new_tag,
    push_blob,
    push_manifest,
    push_tree,
    put_manifest,
    random_bytes,
    tar_layer,
)


def push_image_blobs(registry, repo, m, algo="sha256"):
    for b in m.blobs:
        push_blob(registry, repo, b.data, b.algo)


# ----------------------------------------------------------------------------------------------
# push


def test_put_manifest_by_tag_returns_201_location_and_digest(registry, repo):
    m = make_image()
    push_image_blobs(registry, repo, m)
    r = put_manifest(registry, repo, "tagtest0", m.body, OCI_MANIFEST)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == m.digest, describe(r)
    g = http.get(resolve(r), headers={"Accept": ACCEPT_MANIFESTS})
    assert_manifest_served(g, m.body, OCI_MANIFEST, m.digest)


def test_put_manifest_by_digest_returns_201_location_and_digest(registry, repo):
    m = make_image()
    push_image_blobs(registry, repo, m)
    r = put_manifest(registry, repo, m.digest, m.body, OCI_MANIFEST)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == m.digest, describe(r)
    g = http.get(resolve(r), headers={"Accept": ACCEPT_MANIFESTS})
    assert_manifest_served(g, m.body, OCI_MANIFEST, m.digest)


def test_same_manifest_under_several_tags(registry, repo):
    """Suite A #48: PUT manifest under test0..test3, each 201 + Location."""
    m = make_image()
    push_image_blobs(registry, repo, m)
    for tag in ["test0", "test1", "test2", "test3"]:
        push_manifest(registry, repo, m.body, OCI_MANIFEST, ref=tag)
    for tag in ["test0", "test1", "test2", "test3"]:
        assert_manifest_served(get_manifest(registry, repo, tag), m.body, OCI_MANIFEST, m.digest)
    assert sorted(list_tags(registry, repo).json()["tags"]) == ["test0", "test1", "test2", "test3"]


def test_pushing_same_manifest_again_is_idempotent(registry, repo):
    m = make_image()
    push_image_blobs(registry, repo, m)
    push_manifest(registry, repo, m.body, OCI_MANIFEST, ref="again")
    push_manifest(registry, repo, m.body, OCI_MANIFEST, ref="again")
    push_manifest(registry, repo, m.body, OCI_MANIFEST)
    assert_manifest_served(get_manifest(registry, repo, "again"), m.body, OCI_MANIFEST, m.digest)


def test_retagging_moves_the_tag_and_keeps_the_old_manifest(registry, repo):
    a, b = make_image(), make_image()
    push_tree(registry, repo, a, tag="latest")
    push_tree(registry, repo, b, tag="latest")
    assert_manifest_served(get_manifest(registry, repo, "latest"), b.body, OCI_MANIFEST, b.digest)
    assert_manifest_served(get_manifest(registry, repo, a.digest), a.body, OCI_MANIFEST, a.digest)


def test_manifest_without_media_type_field_is_accepted(registry, repo):
    """Suite A #49: the empty-layer manifest has no `mediaType` field."""
    m = make_image(layers=0, media_type_field=False)
    push_image_blobs(registry, repo, m)
    r = put_manifest(registry, repo, "emptylayer", m.body, OCI_MANIFEST)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Location"), describe(r)
    assert_manifest_served(
        get_manifest(registry, repo, "emptylayer"), m.body, OCI_MANIFEST, m.digest
    )


def test_manifest_bytes_are_stored_verbatim(registry, repo):
    """Odd whitespace, key order, unknown fields, unicode escapes: returned byte-for-byte."""
    config = Blob(image_config(), OCI_CONFIG)
    layer = Blob(tar_layer(), OCI_LAYER_GZIP)
    for b in (config, layer):
        push_blob(registry, repo, b.data)
    body = (
        '{\n\t"layers" :[ {"size":' + str(len(layer.data)) + ' ,"digest":"' + layer.digest
        + '","mediaType":"' + layer.media_type + '","x-extra":[1,2.50,null]}],'
        + '   "config":{"digest":"' + config.digest + '","mediaType":"' + config.media_type
        + '","size":' + str(len(config.data)) + ', "newUnspecifiedField":"\\u00e9t\\u00e9"},'
        + '"schemaVersion":2,"mediaType":"' + OCI_MANIFEST + '","annotations":{"k":"v  with  spaces"},'
        + '"zzUnknown":{"nested":{"deep":true}}}\n\n'
    ).encode()  # fmt: skip
    json.loads(body)  # it is valid JSON
    digest = push_manifest(registry, repo, body, OCI_MANIFEST, ref="verbatim")
    assert digest == digest_of(body)
    for ref in ("verbatim", digest):
        assert_manifest_served(get_manifest(registry, repo, ref), body, OCI_MANIFEST, digest)


def test_manifest_with_data_field_and_unknown_descriptor_field(registry, repo):
    """Suite A fixtures: config descriptor carries `data` and `newUnspecifiedField`."""
    cfg = image_config()
    config = Blob(cfg, OCI_CONFIG)
    m = make_image(config=config)
    doc = m.json
    doc["config"]["data"] = base64.b64encode(cfg).decode()
    doc["config"]["newUnspecifiedField"] = "null"
    body = dumps(doc)
    push_image_blobs(registry, repo, m)
    digest = push_manifest(registry, repo, body, OCI_MANIFEST)
    assert_manifest_served(get_manifest(registry, repo, digest), body, OCI_MANIFEST, digest)


# ----------------------------------------------------------------------------------------------
# pull


@pytest.mark.parametrize("by", ["tag", "digest"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_and_head_manifest_return_type_length_and_digest(registry, repo, by, method):
    m = make_image()
    digest = push_tree(registry, repo, m, tag="tagtest0")
    ref = "tagtest0" if by == "tag" else digest
    r = get_manifest(registry, repo, ref, method)
    assert_manifest_served(r, m.body, OCI_MANIFEST, m.digest, head=method == "HEAD")
    assert ";" not in r.headers["Content-Type"], describe(r)


def test_get_manifest_with_narrow_accept_still_returns_stored_type(registry, repo):
    m = make_image()
    push_tree(registry, repo, m, tag="narrow")
    r = http.get(manifest_url(registry, repo, "narrow"), headers={"Accept": OCI_MANIFEST})
    assert_manifest_served(r, m.body, OCI_MANIFEST, m.digest)
    r = http.get(manifest_url(registry, repo, "narrow"))
    assert_manifest_served(r, m.body, OCI_MANIFEST, m.digest)


@pytest.mark.parametrize(
    "ref",
    [".INVALID_MANIFEST_NAME", "no-such-tag", "sha256:" + "1" * 64, "sha512:" + "2" * 128],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_unknown_manifest_is_404_manifest_unknown(registry, repo, ref, method):
    """Suite A #11/#15/#47 (`.INVALID_MANIFEST_NAME` must be 404, not 400) and suite B
    `missing-manifest`."""
    push_tree(registry, repo, make_image(), tag="present")
    r = http.request(
        method, manifest_url(registry, repo, ref), headers={"Accept": ACCEPT_MANIFESTS}
    )
    assert_error(r, 404, "MANIFEST_UNKNOWN")


def test_manifest_of_unknown_repository_is_404(registry, repo):
    r = get_manifest(registry, repo, "latest")
    assert_error(r, 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


def test_manifest_of_one_repository_is_not_readable_through_another(registry, repo, repo2):
    m = make_image()
    digest = push_tree(registry, repo, m, tag="mine")
    push_tree(registry, repo2, make_image(), tag="mine")
    assert_error(get_manifest(registry, repo2, digest), 404, "MANIFEST_UNKNOWN")
    assert_error(get_manifest(registry, repo2, digest, "HEAD"), 404)


# ----------------------------------------------------------------------------------------------
# docker media types


def test_docker_schema2_manifest_and_manifest_list(registry, repo):
    img = make_image(docker=True)
    d_img = push_tree(registry, repo, img, tag="docker")
    r = get_manifest(registry, repo, "docker")
    assert_manifest_served(r, img.body, DOCKER_MANIFEST, d_img)
    other = make_image(docker=True)
    lst = make_index([img, other], docker=True)
    d_lst = push_tree(registry, repo, lst, tag="docker-list")
    for ref in ("docker-list", d_lst):
        assert_manifest_served(get_manifest(registry, repo, ref), lst.body, DOCKER_LIST, d_lst)
        r = get_manifest(registry, repo, ref, "HEAD")
        assert_manifest_served(r, lst.body, DOCKER_LIST, d_lst, head=True)


# ----------------------------------------------------------------------------------------------
# size limit


def test_manifest_over_the_size_limit_gets_413(registry, repo):
    annotations = {f"org.example.a{i}": "x" * 10_000 for i in range(540)}
    m = make_image(annotations=annotations)
    assert m.size > 5 * 1024 * 1024
    push_image_blobs(registry, repo, m)
    r = put_manifest(registry, repo, "huge", m.body, OCI_MANIFEST)
    assert_error(r, 413)
    assert_error(get_manifest(registry, repo, "huge"), 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


# ----------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"[]",
        b"null",
        b'"a string"',
        b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"',
        (
            b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
            b' "config": "not-a-descriptor", "layers": []}'
        ),
        (
            b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
            b' "config": {"mediaType": "application/vnd.oci.image.config.v1+json",'
            b' "digest": "sha256:nothex", "size": 2}, "layers": []}'
        ),
        (
            b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",'
            b' "layers": {"not": "a list"}}'
        ),
        b"\xff\xfe\x00garbage",
    ],
    ids=[
        "empty", "truncated", "array", "null", "string", "unterminated",
        "config-not-object", "config-bad-digest", "layers-not-list", "binary",
    ],
)  # fmt: skip
def test_malformed_manifest_is_400_manifest_invalid(registry, repo, body):
    r = put_manifest(registry, repo, "bad", body, OCI_MANIFEST)
    assert_error(r, 400, "MANIFEST_INVALID")


def test_malformed_index_is_400_manifest_invalid(registry, repo):
    body = b'{"schemaVersion": 2, "mediaType": "%s", "manifests": "nope"}' % OCI_INDEX.encode()
    assert_error(put_manifest(registry, repo, "bad", body, OCI_INDEX), 400, "MANIFEST_INVALID")


def test_manifest_with_missing_config_blob_is_400_manifest_blob_unknown(registry, repo):
    m = make_image()
    push_blob(registry, repo, m.blobs[1].data)  # only the layer
    r = put_manifest(registry, repo, "missing-config", m.body, OCI_MANIFEST)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(get_manifest(registry, repo, "missing-config"), 404)


def test_manifest_with_missing_layer_is_400_manifest_blob_unknown(registry, repo):
    m = make_image(layers=2)
    push_blob(registry, repo, m.blobs[0].data)
    push_blob(registry, repo, m.blobs[1].data)  # the second layer is missing
    r = put_manifest(registry, repo, m.digest, m.body, OCI_MANIFEST)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(get_manifest(registry, repo, m.digest), 404, "MANIFEST_UNKNOWN")


def test_manifest_referencing_blob_of_another_repository_is_400(registry, repo, repo2):
    m = make_image()
    push_image_blobs(registry, repo2, m)
    r = put_manifest(registry, repo, "foreign", m.body, OCI_MANIFEST)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")


def test_index_with_missing_child_is_400_manifest_blob_unknown(registry, repo):
    pushed, missing = make_image(), make_image()
    push_tree(registry, repo, pushed)
    for b in missing.blobs:
        push_blob(registry, repo, b.data)  # blobs there, child manifest not
    idx = make_index([pushed, missing])
    r = put_manifest(registry, repo, "idx", idx.body, OCI_INDEX)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")


def test_index_with_child_only_in_another_repository_is_400(registry, repo, repo2):
    child = make_image()
    push_tree(registry, repo2, child)
    for b in child.blobs:
        push_blob(registry, repo, b.data)
    idx = make_index([child])
    r = put_manifest(registry, repo, "idx", idx.body, OCI_INDEX)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")


def test_manifest_with_nondistributable_layers_that_were_never_uploaded_is_accepted(registry, repo):
    nd = [
        Blob(random_bytes(100), "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
        Blob(random_bytes(100), "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
    ]
    normal = Blob(tar_layer(), OCI_LAYER_GZIP)
    m = make_image(layer_blobs=[nd[0], normal, nd[1]])
    doc = m.json
    for i in (0, 2):
        doc["layers"][i]["urls"] = [f"https://example.com/layer-{i}.tar.gz"]
    body = dumps(doc)
    push_blob(registry, repo, m.blobs[0].data)  # config
    push_blob(registry, repo, normal.data)
    digest = push_manifest(registry, repo, body, OCI_MANIFEST, ref="nd")
    assert_manifest_served(get_manifest(registry, repo, "nd"), body, OCI_MANIFEST, digest)


def test_put_by_digest_with_body_not_matching_is_400_digest_invalid(registry, repo, algo):
    """Suite B `bad-digest-image`: body altered after digesting."""
    m = make_image(algo=algo)
    push_image_blobs(registry, repo, m)
    altered = m.body.replace(b'"schemaVersion": 2', b'"schemaVersion": 2, "x": 1')
    assert altered != m.body
    r = put_manifest(registry, repo, m.digest, altered, OCI_MANIFEST)
    assert_error(r, 400, "DIGEST_INVALID")
    assert_error(get_manifest(registry, repo, m.digest), 404, "MANIFEST_UNKNOWN")
    assert_error(get_manifest(registry, repo, digest_of(altered, algo)), 404, "MANIFEST_UNKNOWN")


def test_put_manifest_to_malformed_digest_reference_is_400(registry, repo):
    """Suite B `invalid-digest-format`: PUT 400, GET 400 or 404."""
    m = make_image()
    push_image_blobs(registry, repo, m)
    r = put_manifest(registry, repo, "sha256:baddigeststring", m.body, OCI_MANIFEST)
    assert_error(r, 400, "DIGEST_INVALID")
    g = get_manifest(registry, repo, "sha256:baddigeststring")
    assert_error(g, (400, 404), "DIGEST_INVALID", "MANIFEST_UNKNOWN")


def test_get_manifest_with_malformed_digest_is_400_or_404_with_spec_error(registry, repo):
    """Suite A #19: GET /manifests/sha256:totallywrong → 400 (spec JSON body) or 404."""
    push_tree(registry, repo, make_image(), tag="x")
    for method in ("GET", "HEAD", "DELETE"):
        r = http.request(method, manifest_url(registry, repo, "sha256:totallywrong"))
        assert_error(r, (400, 404), "DIGEST_INVALID", "MANIFEST_UNKNOWN")


def test_put_manifest_by_sha512_digest(registry, repo):
    m = make_image()
    push_image_blobs(registry, repo, m)
    d512 = digest_of(m.body, "sha512")
    r = put_manifest(registry, repo, d512, m.body, OCI_MANIFEST)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == d512, describe(r)
    assert_manifest_served(get_manifest(registry, repo, d512), m.body, OCI_MANIFEST, d512)


# ----------------------------------------------------------------------------------------------
# tag parameters (OCI-Tag)


def test_put_by_digest_with_tag_params_creates_all_tags_and_echoes_oci_tag(registry, repo, algo):
    m = make_image(algo=algo)
    push_image_blobs(registry, repo, m)
    tags = ["a", "b", new_tag()]
    r = put_manifest(registry, repo, m.digest, m.body, OCI_MANIFEST, params={"tag": tags})
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == m.digest, describe(r)
    assert sorted(header_list(r, "OCI-Tag")) == sorted(tags), describe(r)
    for tag in tags:
        assert_manifest_served(get_manifest(registry, repo, tag), m.body, OCI_MANIFEST, m.digest)
    assert sorted(list_tags(registry, repo).json()["tags"]) == sorted(tags)


def test_tag_param_with_invalid_tag_is_400(registry, repo):
    m = make_image()
    push_image_blobs(registry, repo, m)
    r = put_manifest(registry, repo, m.digest, m.body, OCI_MANIFEST, params={"tag": ["ok", "-bad"]})
    assert_error(r, 400, "MANIFEST_INVALID", "NAME_INVALID", "DIGEST_INVALID")


# ----------------------------------------------------------------------------------------------
# subject


def test_manifest_with_subject_returns_oci_subject(registry, repo):
    subject = make_image()
    push_tree(registry, repo, subject, tag="subject")
    art = make_artifact(subject=subject)
    push_image_blobs(registry, repo, art)
    r = put_manifest(registry, repo, art.digest, art.body, OCI_MANIFEST)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("OCI-Subject") == subject.digest, describe(r)


def test_manifest_with_subject_that_does_not_exist_is_accepted(registry, repo):
    ghost = make_image()  # never pushed
    art = make_artifact(subject=ghost)
    push_image_blobs(registry, repo, art)
    r = put_manifest(registry, repo, art.digest, art.body, OCI_MANIFEST)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("OCI-Subject") == ghost.digest, describe(r)
    assert_error(get_manifest(registry, repo, ghost.digest), 404, "MANIFEST_UNKNOWN")


def test_index_with_subject_returns_oci_subject(registry, repo):
    subject = make_image()
    push_tree(registry, repo, subject)
    child = make_artifact()
    idx = make_index([child], artifact_type="application/vnd.food.stand", subject=subject)
    push_tree(registry, repo, child)
    r = put_manifest(registry, repo, idx.digest, idx.body, OCI_INDEX)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("OCI-Subject") == subject.digest, describe(r)


def test_manifest_without_subject_has_no_oci_subject(registry, repo):
    m = make_image()
    push_image_blobs(registry, repo, m)
    r = put_manifest(registry, repo, "plain", m.body, OCI_MANIFEST)
    assert r.status_code == 201, describe(r)
    assert "OCI-Subject" not in r.headers, describe(r)


def test_digest_reference_is_case_sensitive_hex(registry, repo):
    m = make_image()
    digest = push_tree(registry, repo, m)
    upper = "sha256:" + digest.split(":")[1].upper()
    r = get_manifest(registry, repo, upper)
    assert_error(r, (400, 404), "DIGEST_INVALID", "MANIFEST_UNKNOWN")


# ----------------------------------------------------------------------------------------------
# strict JSON and the image-spec MUST rules: refused with a reason, never stored


def _refused(registry, repo, body: bytes, media_type: str = OCI_MANIFEST) -> str:
    """PUT by digest; assert 400 MANIFEST_INVALID and nothing stored; return the message."""
    digest = digest_of(body)
    r = put_manifest(registry, repo, digest, body, media_type)
    assert_error(r, 400, "MANIFEST_INVALID")
    assert_error(get_manifest(registry, repo, digest), 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")
    return r.json()["errors"][0]["message"]


def test_deeply_nested_manifest_is_400_naming_the_depth_limit(registry, repo):
    body = b'{"schemaVersion": 2, "annotations": {"a": ' + b"[" * 2000 + b"]" * 2000 + b"}}"
    assert "nests deeper than 64 levels" in _refused(registry, repo, body)


@pytest.mark.parametrize("codec", ["utf-16", "utf-32-le", "utf-8-sig"])
def test_manifest_not_in_plain_utf8_is_refused(registry, repo, codec):
    m = make_image()
    push_image_blobs(registry, repo, m)
    body = m.body.decode().encode(codec)
    assert "not valid JSON" in _refused(registry, repo, body)
    push_manifest(registry, repo, m.body, OCI_MANIFEST)  # the same manifest in UTF-8 is fine


def test_manifest_with_duplicate_keys_is_refused(registry, repo):
    m = make_image()
    push_image_blobs(registry, repo, m)
    body = m.body.replace(b'"schemaVersion": 2', b'"schemaVersion": 2, "schemaVersion": 2')
    assert "duplicate key 'schemaVersion'" in _refused(registry, repo, body)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["layers"][0].update(size="12"), "layers[0].size must be a non-negative"),
        (lambda d: d["layers"][0].update(urls=[1]), "layers[0].urls[0] must be a string"),
        (lambda d: d.update(annotations={"k": 1}), "annotations['k'] must be a string"),
        (lambda d: d["config"].update(mediaType="config"), "config.mediaType 'config' is not"),
        (lambda d: d.pop("layers"), "layers is required"),
        (lambda d: d.pop("config"), "config is required in an image manifest"),
        (lambda d: d.update(manifests=[]), "an image manifest must not have manifests"),
    ],
    ids=["size-string", "urls-int", "annotation-int", "media-type", "no-layers", "no-config",
         "image-and-index"],
)
def test_schema_invalid_image_manifest_is_refused_with_its_json_path(registry, repo, change,
                                                                     message):
    m = make_image()
    push_image_blobs(registry, repo, m)
    doc = m.json
    change(doc)
    assert message in _refused(registry, repo, dumps(doc))


def test_schema_invalid_platform_in_index_is_refused(registry, repo):
    child = make_image()
    push_tree(registry, repo, child)
    doc = make_index([child]).json
    doc["manifests"][0]["platform"] = {"os": "linux", "architecture": 64}
    message = _refused(registry, repo, dumps(doc), OCI_INDEX)
    assert "manifests[0].platform.architecture is required and must be a string" in message


def test_accepted_manifest_with_odd_but_valid_json_is_stored_byte_for_byte(registry, repo):
    m = make_image()
    push_image_blobs(registry, repo, m)
    doc = m.json
    doc["annotations"] = {"caf\u00e9": "\U0001f600 [{\\\"", "org.example": ""}
    body = b"\n \t" + json.dumps(doc, ensure_ascii=False, indent=3).encode() + b" \r\n"
    digest = push_manifest(registry, repo, body, OCI_MANIFEST)
    assert get_manifest(registry, repo, digest).content == body
