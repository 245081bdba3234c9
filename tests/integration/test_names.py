"""Repository names and tags: the spec grammar, the 255-character limit, path traversal.

Invalid names → 400 NAME_INVALID (404 tolerated where the router never sees a name), never a
5xx and never a file outside the data directory.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from support.http import describe, http, raw_request
from support.oci import (
    OCI_MANIFEST,
    assert_error,
    digest_of,
    error_codes,
    list_tags,
    make_image,
    manifest_url,
    push_blob,
    push_manifest,
    push_tree,
    put_manifest,
    v2,
)


def _uid() -> str:
    return uuid.uuid4().hex[:10]


# ----------------------------------------------------------------------------------------------
# valid names


@pytest.mark.parametrize(
    "template",
    [
        "{u}",
        "{u}/a/b/c/d",
        "{u}.dots/x",
        "{u}_under/x",
        "{u}__double/x",
        "{u}-dash/x",
        "{u}---dashes/x",
        "{u}/0/9",
        "{u}/a.b_c__d-e--f",
        # components that look like API path segments must not confuse the router
        "{u}/blobs",
        "{u}/blobs/uploads",
        "{u}/manifests/latest",
        "{u}/tags/list",
        "{u}/referrers",
        "{u}/v2",
    ],
)
def test_valid_names_work(registry, template):
    name = template.format(u=_uid())
    digest = push_blob(registry, name, b"valid name")
    assert http.get(v2(registry, f"{name}/blobs/{digest}")).content == b"valid name"
    push_tree(registry, name, make_image(), tag="latest")
    r = list_tags(registry, name)
    assert r.status_code == 200 and r.json()["name"] == name, describe(r)


def test_name_of_255_characters_is_accepted(registry):
    prefix = _uid() + "/"
    name = prefix + "a" * (255 - len(prefix))
    assert len(name) == 255
    push_tree(registry, name, make_image(), tag="long")
    r = list_tags(registry, name)
    assert r.status_code == 200 and r.json()["tags"] == ["long"], describe(r)


# ----------------------------------------------------------------------------------------------
# invalid names

INVALID_NAMES = [
    "Upper/case",
    "{u}/UPPER",
    "-{u}",
    "{u}-",
    "{u}/-x",
    "{u}/x-",
    "{u}.",
    ".{u}",
    "_{u}",
    "{u}_",
    "{u}___x",
    "{u}..x",
    "{u}.-x",
    "{u}/a..b",
    "{u}/x!y",
    "{u}/x%20y",
    "{u}/x+y",
    "{u}/x~y",
    "{u}/%C3%A9",
]


def _files_outside(data_dir: Path) -> set[Path]:
    """Every path under the session's temp root (two levels up) that is not in data_dir."""
    root = data_dir.parents[1]
    return {p for p in root.rglob("*") if data_dir not in p.parents and p != data_dir}


@pytest.mark.parametrize("template", INVALID_NAMES)
def test_invalid_name_is_400_name_invalid(registry, template):
    name = template.format(u=_uid())
    before = _files_outside(registry.data_dir)
    checks = [
        ("GET", f"/v2/{name}/tags/list", None),
        ("POST", f"/v2/{name}/blobs/uploads/", b""),
        ("GET", f"/v2/{name}/blobs/{digest_of(b'x')}", None),
        ("GET", f"/v2/{name}/manifests/latest", None),
        ("PUT", f"/v2/{name}/manifests/latest", make_image().body),
        ("GET", f"/v2/{name}/referrers/{digest_of(b'x')}", None),
    ]
    for method, path, body in checks:
        headers = {"Content-Type": OCI_MANIFEST} if method == "PUT" else {}
        status, _, data = raw_request(registry.url, method, path, body, headers)
        assert status == 400, (method, path, status, data[:300])
        assert b"NAME_INVALID" in data, (method, path, status, data[:300])
    assert _files_outside(registry.data_dir) - before == set()


def test_name_longer_than_255_characters_is_400_name_invalid(registry):
    prefix = _uid() + "/"
    name = prefix + "a" * (256 - len(prefix))
    r = http.post(v2(registry, f"{name}/blobs/uploads/"))
    assert_error(r, 400, "NAME_INVALID")
    assert_error(list_tags(registry, name), 400, "NAME_INVALID")


def test_very_long_name_is_400_not_5xx(registry):
    name = "/".join(["a" * 200] * 20)
    r = http.get(v2(registry, f"{name}/tags/list"))
    assert_error(r, (400, 404, 414), "NAME_INVALID", "NAME_UNKNOWN")


TRAVERSALS = [
    "/v2/%2e%2e/%2e%2e/%2e%2e/escape-{u}/blobs/uploads/",
    "/v2/{u}/%2e%2e/%2e%2e/escape/blobs/uploads/",
    "/v2/../../escape-{u}/blobs/uploads/",
    "/v2/{u}/../../../escape/blobs/uploads/",
    "/v2/..%2f..%2fescape-{u}/blobs/uploads/",
    "/v2/{u}%2f..%2f..%2f..%2fescape/blobs/uploads/",
    "/v2/{u}/%2e%2e%2f%2e%2e%2fescape/blobs/uploads/",
    "/v2/.%2e/escape-{u}/blobs/uploads/",
    "/v2/{u}//x/blobs/uploads/",
]


@pytest.mark.parametrize("template", TRAVERSALS)
def test_path_traversal_in_name_is_rejected_and_writes_nothing_outside(registry, template):
    path = template.format(u=_uid())
    before = _files_outside(registry.data_dir)
    for method, target in (("POST", path), ("GET", path.replace("blobs/uploads/", "tags/list"))):
        status, _, data = raw_request(registry.url, method, target)
        assert status in (400, 404), (method, target, status, data[:300])
        if status == 400:
            assert b"NAME_INVALID" in data, (target, data[:300])
    assert _files_outside(registry.data_dir) - before == set()


def test_traversal_tag_and_digest_write_nothing_outside(registry):
    name = f"{_uid()}/ok"
    push_tree(registry, name, make_image(), tag="base")
    before = _files_outside(registry.data_dir)
    for ref in ("..%2f..%2f..%2fescape", "%2e%2e", "sha256:..%2f..%2fescape", "..", "."):
        status, _, data = raw_request(
            registry.url, "PUT", f"/v2/{name}/manifests/{ref}", make_image().body,
            {"Content-Type": OCI_MANIFEST},
        )  # fmt: skip
        assert status in (400, 404), (ref, status, data[:300])
    assert _files_outside(registry.data_dir) - before == set()


# ----------------------------------------------------------------------------------------------
# tags

VALID_TAGS = ["a", "A", "_x", "0", "v1.2.3", "Release_2024-01", "x" * 128, "a.b-c_d", "UPPER"]
INVALID_TAGS = [".x", "-x", "x" * 129, "a%20b", "a+b", "a!b", "a~b", "%C3%A9t%C3%A9"]


@pytest.mark.parametrize("tag", VALID_TAGS)
def test_valid_tags_are_accepted(registry, repo, tag):
    m = make_image()
    push_tree(registry, repo, m)
    digest = push_manifest(registry, repo, m.body, OCI_MANIFEST, ref=tag)
    r = http.get(manifest_url(registry, repo, tag), headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200 and r.headers.get("Docker-Content-Digest") == digest, describe(r)
    assert tag in list_tags(registry, repo).json()["tags"]


@pytest.mark.parametrize("tag", INVALID_TAGS)
def test_invalid_tag_on_push_is_400_with_spec_code(registry, repo, tag):
    m = make_image()
    push_tree(registry, repo, m)
    status, _, data = raw_request(
        registry.url, "PUT", f"/v2/{repo}/manifests/{tag}", m.body, {"Content-Type": OCI_MANIFEST}
    )
    assert status == 400, (tag, status, data[:300])
    assert any(
        code.encode() in data for code in ("MANIFEST_INVALID", "NAME_INVALID", "DIGEST_INVALID")
    ), data[:300]
    assert list_tags(registry, repo).json()["tags"] in ([], None), "invalid tag was stored"


def test_invalid_tag_error_body_is_spec_json(registry, repo):
    m = make_image()
    push_tree(registry, repo, m)
    r = put_manifest(registry, repo, "-bad", m.body, OCI_MANIFEST)
    assert r.status_code == 400, describe(r)
    assert error_codes(r)[0] in ("MANIFEST_INVALID", "NAME_INVALID", "DIGEST_INVALID")


def test_tags_are_case_sensitive(registry, repo):
    a, b = make_image(), make_image()
    da = push_tree(registry, repo, a, tag="Tag")
    db = push_tree(registry, repo, b, tag="tag")
    assert http.head(manifest_url(registry, repo, "Tag")).headers["Docker-Content-Digest"] == da
    assert http.head(manifest_url(registry, repo, "tag")).headers["Docker-Content-Digest"] == db
    assert sorted(list_tags(registry, repo).json()["tags"]) == ["Tag", "tag"]
