import json

import pytest

from moorage.oci import mediatypes as mt
from moorage.oci.errors import ManifestInvalid
from moorage.oci.manifest import parse_manifest

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def image(**extra):
    body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D2,
                    "size": 10}],
    }
    body.update(extra)
    return json.dumps(body).encode()


def test_image_manifest_blobs_and_artifact_type_from_config():
    parsed = parse_manifest(image(), mt.OCI_MANIFEST)
    assert [str(d.digest) for d in parsed.blobs] == [D1, D2]
    assert parsed.artifact_type == "application/vnd.oci.image.config.v1+json"
    assert parsed.children == []


def test_artifact_type_and_subject_and_annotations():
    parsed = parse_manifest(
        image(artifactType="application/x.model", annotations={"k": "v"},
              subject={"mediaType": mt.OCI_MANIFEST, "digest": D1, "size": 5}),
        mt.OCI_MANIFEST,
    )
    assert parsed.artifact_type == "application/x.model"
    assert str(parsed.subject.digest) == D1
    assert parsed.annotations == {"k": "v"}


def test_index_children():
    body = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                       "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": D1, "size": 3}]})
    parsed = parse_manifest(body.encode(), mt.OCI_INDEX)
    assert [str(d.digest) for d in parsed.children] == [D1]
    assert parsed.blobs == []


def test_media_type_falls_back_to_header_then_shape():
    body = json.loads(image())
    del body["mediaType"]
    assert parse_manifest(json.dumps(body).encode(), None).media_type == mt.OCI_MANIFEST
    assert parse_manifest(json.dumps(body).encode(), mt.DOCKER_MANIFEST).media_type == (
        mt.DOCKER_MANIFEST
    )


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", b'{"schemaVersion": 1}', json.dumps({"schemaVersion": 2}).encode(),
     image(config={"mediaType": "x", "digest": "sha256:bad", "size": 1}),
     image(config={"mediaType": "x", "digest": D1, "size": -1}),
     image(layers="nope")],
)
def test_invalid_manifests(data):
    with pytest.raises(ManifestInvalid):
        parse_manifest(data, mt.OCI_MANIFEST)


def test_content_type_must_match_declared_media_type():
    with pytest.raises(ManifestInvalid):
        parse_manifest(image(), mt.OCI_INDEX)
