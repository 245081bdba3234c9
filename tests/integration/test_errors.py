"""Error responses: always the spec JSON shape with a spec code, never a 5xx.

Suite A #19 (400 body must carry an OCI-conforming JSON error) generalised to every error
the protocol tests provoke.
"""

from __future__ import annotations

import uuid

import pytest

from .helpers import (
    OCI_MANIFEST,
    add_query,
    assert_error,
    describe,
    digest_of,
    http,
    make_image,
    manifest_url,
    patch_chunk,
    push_blob,
    push_tree,
    put_manifest,
    random_digest,
    raw_request,
    start_upload,
    v2,
)


def _provoke(registry, repo: str, case: str):
    """Return a response that must be an error, with its expected status and codes."""
    push_tree(registry, repo, make_image(), tag="present")
    if case == "unknown-blob":
        return http.get(v2(registry, f"{repo}/blobs/{random_digest()}")), 404, ("BLOB_UNKNOWN",)
    if case == "unknown-manifest":
        return http.get(manifest_url(registry, repo, "absent")), 404, ("MANIFEST_UNKNOWN",)
    if case == "unknown-upload":
        r = http.get(v2(registry, f"{repo}/blobs/uploads/{uuid.uuid4()}"))
        return r, 404, ("BLOB_UPLOAD_UNKNOWN",)
    if case == "unknown-repository":
        return http.get(v2(registry, f"{repo}-nope/tags/list")), 404, ("NAME_UNKNOWN",)
    if case == "invalid-name":
        return http.get(v2(registry, "Bad_Name/tags/list")), 400, ("NAME_INVALID",)
    if case == "manifest-invalid":
        r = put_manifest(registry, repo, "bad", b"{", OCI_MANIFEST)
        return r, 400, ("MANIFEST_INVALID",)
    if case == "manifest-blob-unknown":
        m = make_image()
        return (
            put_manifest(registry, repo, "x", m.body, OCI_MANIFEST),
            400,
            ("MANIFEST_BLOB_UNKNOWN",),
        )
    if case == "digest-mismatch":
        loc, _ = start_upload(registry, repo)
        r = http.put(add_query(loc, {"digest": digest_of(b"other")}), data=b"bytes")
        return r, 400, ("DIGEST_INVALID",)
    if case == "digest-malformed":
        return http.get(v2(registry, f"{repo}/blobs/sha256:nothex")), 400, ("DIGEST_INVALID",)
    if case == "out-of-order":
        loc, _ = start_upload(registry, repo)
        return patch_chunk(loc, b"abc", 10), 416, ("BLOB_UPLOAD_INVALID",)
    if case == "manifest-malformed-digest":
        r = http.get(manifest_url(registry, repo, "sha256:totallywrong"))
        return r, (400, 404), ("DIGEST_INVALID", "MANIFEST_UNKNOWN")
    raise AssertionError(case)


CASES = [
    "unknown-blob",
    "unknown-manifest",
    "unknown-upload",
    "unknown-repository",
    "invalid-name",
    "manifest-invalid",
    "manifest-blob-unknown",
    "digest-mismatch",
    "digest-malformed",
    "out-of-order",
    "manifest-malformed-digest",
]


@pytest.mark.parametrize("case", CASES)
def test_error_response_is_spec_json(registry, repo, case):
    r, status, codes = _provoke(registry, repo, case)
    assert_error(r, status, *codes)
    assert r.headers.get("Content-Type", "").startswith("application/json"), describe(r)


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "{repo}/manifests/present"),
        ("PATCH", "{repo}/manifests/present"),
        ("POST", "{repo}/tags/list"),
        ("PUT", "{repo}/blobs/" + "sha256:" + "0" * 64),
        ("PATCH", "{repo}/blobs/" + "sha256:" + "0" * 64),
        ("DELETE", "{repo}/tags/list"),
    ],
)
def test_unsupported_method_is_a_json_client_error(registry, repo, method, path):
    push_tree(registry, repo, make_image(), tag="present")
    r = http.request(method, v2(registry, path.format(repo=repo)), data=b"")
    assert r.status_code in (400, 404, 405), describe(r)
    assert_error(r, r.status_code)


def test_unknown_endpoint_under_v2_is_json_404(registry, repo):
    push_blob(registry, repo, b"x")
    r = http.get(v2(registry, f"{repo}/no-such-endpoint"))
    assert r.status_code in (400, 404), describe(r)
    assert_error(r, r.status_code)


@pytest.mark.parametrize(
    "path",
    [
        "/v2/{repo}/manifests/" + "t" * 5000,
        "/v2/{repo}/manifests/%00",
        "/v2/{repo}/manifests/%ff%fe",
        "/v2/{repo}/blobs/sha256:%00",
        "/v2/{repo}/blobs/uploads/%2e%2e%2f%2e%2e",
        "/v2/{repo}/blobs/uploads/..%2f..%2f..%2fetc%2fpasswd",
        "/v2/{repo}/tags/list?n=99999999999999999999999",
        "/v2/{repo}/tags/list?last=%00",
        "/v2/{repo}/referrers/sha256:%00",
        "/v2/_catalog?n=-5",
        "/v2/_catalog?last=%ff",
        "/v2/%e2%98%83/tags/list",
    ],
)
def test_odd_requests_never_cause_a_server_error(registry, repo, path):
    push_tree(registry, repo, make_image(), tag="present")
    status, _, body = raw_request(registry.url, "GET", path.format(repo=repo))
    assert status < 500, (path, status, body[:300])


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Range": "bytes=0-2"},
        {"Content-Range": "5-2"},
        {"Content-Range": "-"},
        {"Content-Range": "0-99999999999999999999999"},
        {"Content-Length": "abc"},
    ],
)
def test_odd_upload_headers_never_cause_a_server_error(registry, repo, headers):
    loc, _ = start_upload(registry, repo)
    path = loc.split(registry.url, 1)[1]
    status, _, body = raw_request(registry.url, "PATCH", path, b"abc", headers)
    assert status < 500, (headers, status, body[:300])
