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


# -- strict JSON ---------------------------------------------------------------------------------


def test_deep_nesting_is_manifest_invalid_not_recursion_error():
    deep = b'{"schemaVersion": 2, "annotations": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    with pytest.raises(ManifestInvalid, match="nests deeper than 64 levels"):
        parse_manifest(deep, mt.OCI_MANIFEST)


def test_brackets_inside_strings_do_not_count_as_nesting():
    value = "[" * 500 + '\\"{' * 100 + '"]'  # escaped quotes and backslashes too
    parsed = parse_manifest(image(annotations={"k": value}), mt.OCI_MANIFEST)
    assert parsed.annotations == {"k": value}


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_utf16_and_utf32_manifests_are_refused(codec):
    data = image().decode().encode(codec)
    with pytest.raises(ManifestInvalid, match="not valid JSON"):
        parse_manifest(data, mt.OCI_MANIFEST)


def test_utf8_byte_order_mark_is_refused():
    with pytest.raises(ManifestInvalid, match="without a byte order mark"):
        parse_manifest(b"\xef\xbb\xbf" + image(), mt.OCI_MANIFEST)


def test_invalid_utf8_is_refused_with_its_offset():
    with pytest.raises(ManifestInvalid, match="UTF-8: invalid byte at offset 1"):
        parse_manifest(b"{\xff}", mt.OCI_MANIFEST)


def test_duplicate_keys_are_refused():
    data = image().replace(b'"schemaVersion": 2', b'"schemaVersion": 2, "schemaVersion": 2')
    with pytest.raises(ManifestInvalid, match="duplicate key 'schemaVersion'"):
        parse_manifest(data, mt.OCI_MANIFEST)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_constants_are_refused(constant):
    data = image().replace(b'"size": 10', b'"size": ' + constant)
    with pytest.raises(ManifestInvalid, match="is not a JSON value"):
        parse_manifest(data, mt.OCI_MANIFEST)


def test_unpaired_surrogate_escape_is_refused():
    data = image(annotations={"k": "x"}).replace(b'"x"', b'"\\ud800"')
    with pytest.raises(ManifestInvalid, match="unpaired surrogate"):
        parse_manifest(data, mt.OCI_MANIFEST)


def test_non_ascii_text_in_utf8_is_fine():
    parsed = parse_manifest(image(annotations={"k": "caf\u00e9 \U0001f600"}), mt.OCI_MANIFEST)
    assert parsed.annotations == {"k": "caf\u00e9 \U0001f600"}


# -- image-spec MUST rules -----------------------------------------------------------------------

CONFIG = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 2}
LAYER = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D2, "size": 10}


def layer(**changes):
    entry = {**LAYER, **changes}
    return [LAYER, LAYER, {k: v for k, v in entry.items() if v is not ...}]


def index(*entries, **extra):
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": list(entries), **extra}
    return json.dumps(body).encode()


ENTRY = {"mediaType": mt.OCI_MANIFEST, "digest": D1, "size": 3}


@pytest.mark.parametrize(
    "data, message",
    [
        (image(layers=layer(size="10")), "layers[2].size must be a non-negative integer"),
        (image(layers=layer(size=1.5)), "layers[2].size must be a non-negative integer"),
        (image(layers=layer(size=True)), "layers[2].size must be a non-negative integer"),
        (image(layers=layer(size=2**63)), "layers[2].size must be a non-negative integer"),
        (image(layers=layer(size=...)), "layers[2].size must be a non-negative integer"),
        (image(layers=layer(digest=5)), "layers[2].digest is required and must be a string"),
        (image(layers=layer(digest=...)), "layers[2].digest is required"),
        (image(layers=layer(digest="sha256:abc")), "layers[2].digest: invalid sha256 digest"),
        (image(layers=layer(mediaType=...)), "layers[2].mediaType is required"),
        (image(layers=layer(mediaType=7)), "layers[2].mediaType must be a string"),
        (image(layers=layer(mediaType="nonsense")), "layers[2].mediaType 'nonsense' is not a"),
        (image(layers=layer(mediaType="a/b; x=y")), "is not a media type"),
        (image(layers=layer(urls="http://x")), "layers[2].urls must be a list of strings"),
        (image(layers=layer(urls=["http://x", 3])), "layers[2].urls[1] must be a string"),
        (image(layers=layer(annotations=["a"])), "layers[2].annotations must be an object"),
        (image(layers=layer(annotations={"k": 1})), "layers[2].annotations['k'] must be a string"),
        (image(layers=layer(annotations={"": "v"})), "layers[2].annotations keys must not be"),
        (image(layers=layer(artifactType=1)), "layers[2].artifactType must be a string"),
        (image(layers=layer(data="%%%")), "layers[2].data is not valid base64"),
        (image(layers=layer(data="e30=")), "layers[2].data does not match the descriptor"),
        (image(layers=[LAYER, "sha256:x"]), "layers[1] must be a descriptor object"),
        (image(layers=None), "layers must be a list of descriptors"),
        (image(layers={"0": LAYER}), "layers must be a list of descriptors"),
        (image(annotations={"k": None}), "annotations['k'] must be a string"),
        (image(annotations="k=v"), "annotations must be an object of strings"),
        (image(mediaType=5), "mediaType must be a string"),
        (image(artifactType=["x"]), "artifactType must be a string"),
        (image(artifactType="no-slash"), "artifactType 'no-slash' is not a media type"),
        (image(schemaVersion=2.0), "schemaVersion must be the integer 2"),
        (image(schemaVersion="2"), "schemaVersion must be the integer 2"),
        (image(subject="sha256:x"), "subject must be a descriptor object"),
        (image(subject={**ENTRY, "size": -1}), "subject.size must be a non-negative integer"),
        (image(config={**CONFIG, "size": None}), "config.size must be a non-negative integer"),
        (image(manifests=[ENTRY]), "an image manifest must not have manifests"),
        (index(ENTRY, config=CONFIG), "an image index must not have config"),
        (index(ENTRY, layers=[]), "an image index must not have layers"),
        (index({**ENTRY, "platform": "linux/amd64"}), "manifests[0].platform must be an object"),
        (index({**ENTRY, "platform": {"os": "linux"}}),
         "manifests[0].platform.architecture is required and must be a string"),
        (index({**ENTRY, "platform": {"os": 1, "architecture": "amd64"}}),
         "manifests[0].platform.os is required and must be a string"),
        (index({**ENTRY, "platform": {"os": "l", "architecture": "a", "os.features": "x"}}),
         "manifests[0].platform.os.features must be a list of strings"),
        (index({**ENTRY, "platform": {"os": "l", "architecture": "a", "variant": 8}}),
         "manifests[0].platform.variant must be a string"),
        (index(ENTRY, {**ENTRY, "digest": "sha256!x"}), "manifests[1].digest: invalid digest"),
        (json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX}).encode(),
         "manifests is required"),
    ],
)
def test_schema_rule_violations_name_the_json_path(data, message):
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(data, None)
    assert message in info.value.message


def test_image_manifest_requires_layers():
    body = json.loads(image())
    del body["layers"]
    with pytest.raises(ManifestInvalid, match="layers is required"):
        parse_manifest(json.dumps(body).encode(), mt.OCI_MANIFEST)


def test_image_manifest_requires_config():
    body = json.loads(image())
    del body["config"]
    with pytest.raises(ManifestInvalid, match="config is required in an image manifest"):
        parse_manifest(json.dumps(body).encode(), mt.OCI_MANIFEST)


def test_content_type_header_must_be_a_media_type():
    with pytest.raises(ManifestInvalid, match="Content-Type 'oci manifest' is not a media type"):
        parse_manifest(image(), "oci manifest")


def test_docker_schema2_with_docker_config_is_accepted():
    body = json.dumps({
        "schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": D1,
                   "size": 7},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": D2, "size": 9}],
    }).encode()
    parsed = parse_manifest(body, mt.DOCKER_MANIFEST)
    assert parsed.media_type == mt.DOCKER_MANIFEST
    assert [d.size for d in parsed.blobs] == [7, 9]


def test_oras_artifact_with_empty_config_and_embedded_data_is_accepted():
    empty = {"mediaType": mt.OCI_EMPTY, "size": 2, "data": "e30=",
             "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}
    data = image(config=empty, artifactType="application/vnd.example+type",
                 layers=[{**LAYER, "annotations": {"org.opencontainers.image.title": "a.txt"}}],
                 subject=ENTRY)
    parsed = parse_manifest(data, mt.OCI_MANIFEST)
    assert parsed.artifact_type == "application/vnd.example+type"
    assert str(parsed.subject.digest) == D1


def test_index_entries_without_platform_and_with_full_platform_are_accepted():
    platform = {"os": "windows", "architecture": "amd64", "os.version": "10.0.17763",
                "os.features": ["win32k"], "variant": "v3", "features": []}
    parsed = parse_manifest(index(ENTRY, {**ENTRY, "platform": platform}), mt.OCI_INDEX)
    assert len(parsed.children) == 2


def test_docker_manifest_list_is_an_index():
    data = index(ENTRY, mediaType=mt.DOCKER_MANIFEST_LIST)
    assert parse_manifest(data, mt.DOCKER_MANIFEST_LIST).children[0].size == 3
