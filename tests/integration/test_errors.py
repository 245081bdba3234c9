"""Error responses: always the spec JSON shape with a spec code, never a 5xx.

Suite A #19 (400 body must carry an OCI-conforming JSON error) generalised to every error
the protocol tests provoke.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid

import pytest
from support.http import add_query, describe, http, raw_request
from support.oci import (
    OCI_MANIFEST,
    assert_error,
    digest_of,
    make_image,
    manifest_url,
    patch_chunk,
    push_blob,
    push_tree,
    put_manifest,
    random_digest,
    start_upload,
    v2,
)
from support.servers import log_lines_since, log_marks


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


@pytest.mark.parametrize("content_range", ["\uff10-\uff12", "\u0660-\u0662", "0x0-0x2"])
def test_content_range_needs_ascii_digits(registry, repo, content_range):
    loc, _ = start_upload(registry, repo)
    path = loc.split(registry.url, 1)[1]
    r = http.patch(registry.url + path, data=b"abc",
                   headers={"Content-Range": content_range.encode()})
    assert_error(r, 416, "BLOB_UPLOAD_INVALID")


@pytest.mark.parametrize("n", ["%C2%B2", "%EF%BC%95", "%D9%A3", "+5", "5%20", "1_0"])
def test_page_size_needs_ascii_digits(registry, repo, n):
    push_tree(registry, repo, make_image(), tag="present")
    status, _, body = raw_request(registry.url, "GET", f"/v2/{repo}/tags/list?n={n}")
    assert status == 400, (n, status, body[:300])
    assert json.loads(body)["errors"][0]["message"].startswith("invalid page size"), body


MALFORMED_HTTP = {
    "header-without-colon": b"GET /v2/ HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
    "bad-request-line": b"GET /v2/ HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    "bad-version": b"GET /v2/ HTTP/9.Z\r\nHost: x\r\n\r\n",
    "control-char-in-header": b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "two-content-lengths": b"PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "bad-content-length": b"PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: \xef\xbc\x95\r\n\r\nabcde",
    "bad-chunk-size": b"PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: x\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "header-line-too-long": b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
}


def _send_raw(registry, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", registry.port), timeout=30) as sock:
        sock.sendall(payload)  # no half-close: aiohttp would drop the connection before answering
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("payload", list(MALFORMED_HTTP.values()), ids=list(MALFORMED_HTTP))
def test_malformed_http_is_400_and_logged_as_one_info_line_without_traceback(registry, payload):
    marks = log_marks(registry)
    answer = _send_raw(registry, payload)
    assert re.match(rb"HTTP/1\.[01] 400 ", answer), answer[:300]
    deadline = time.monotonic() + 30
    while True:
        lines = log_lines_since(marks)
        if any("malformed HTTP request answered with 400" in line for line in lines):
            break
        assert time.monotonic() < deadline, f"no info line for the 400 in {lines[-20:]}"
        time.sleep(0.1)
    assert not [line for line in lines if "Traceback" in line or '"level": "error"' in line]
    info = [json.loads(line) for line in lines if "malformed HTTP request" in line]
    assert info[0]["level"] == "info" and info[0]["logger"] == "aiohttp.server", info
