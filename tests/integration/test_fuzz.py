"""Property-based fuzzing of every endpoint family against a real server over HTTP.

Each property: no 5xx, no reset, invalid input refused with the spec's error, a previously
pushed image still byte-identical, and no traceback or error-level line in the server log.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.http import raw_request
from support.oci import (
    OCI_MANIFEST,
    Manifest,
    digest_of,
    error_codes,
    make_image,
    push_blob,
    push_tree,
)
from support.servers import log_lines_since, log_marks

from moorage.oci.manifest import parse_manifest

FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,  # nothing written into the worktree; failures print their example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The specs' grammars, written out here independently of the server's own regexes.
NAME_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
RANGE_RE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
METHODS = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"]

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
# Header values: no control characters (the client library refuses CR/LF before sending).
header_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=60)
ascii_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
numbers = st.one_of(
    st.integers(-5, 5000).map(str), st.integers(0, 10**30).map(str), ascii_text,
    st.sampled_from(["\uff15", "\u0663", "\u00b2", " 5", "5 ", "+5", "1_0", "0x10", "", "9" * 5000]),
)  # fmt: skip


@dataclass
class Pinned:
    """An image pushed before fuzzing; it must come out byte for byte afterwards."""

    repo: str
    image: Manifest
    digest: str

    def __repr__(self) -> str:
        return f"Pinned({self.repo}@{self.digest})"


@pytest.fixture(scope="module")
def pinned(registry) -> Pinned:
    repo = f"fuzz/pinned-{uuid.uuid4().hex[:8]}"
    image = make_image(layers=2)
    digest = push_tree(registry, repo, image, tag="pinned")
    return Pinned(repo, image, digest)


@pytest.fixture(scope="module")
def blobs_repo(registry, pinned) -> str:
    """A repository holding the pinned image's blobs, where fuzzed manifests are pushed."""
    repo = f"fuzz/manifests-{uuid.uuid4().hex[:8]}"
    for blob in pinned.image.blobs:
        push_blob(registry, repo, blob.data)
    return repo


@pytest.fixture(autouse=True)
def clean_log_and_intact_image(registry, pinned) -> Iterator[None]:
    """After each property: the pinned image is unchanged and the log has no error."""
    marks = log_marks(registry)
    yield
    assert_pinned_intact(registry, pinned)
    time.sleep(0.2)  # let the last log lines land
    lines = log_lines_since(marks)
    bad = [line for line in lines if "Traceback" in line or re.search(r'"level": "(error|critical)"', line)]
    assert not bad, bad[:5]


def assert_pinned_intact(registry, pinned: Pinned) -> None:
    for ref in ("pinned", pinned.digest):
        status, headers, body = raw_request(
            registry.url, "GET", f"/v2/{pinned.repo}/manifests/{ref}",
            headers={"Accept": OCI_MANIFEST},
        )
        assert status == 200 and body == pinned.image.body, (ref, status, body[:200])
        assert headers["docker-content-digest"] == pinned.digest
    for blob in pinned.image.blobs:
        status, _, body = raw_request(registry.url, "GET", f"/v2/{pinned.repo}/blobs/{blob.digest}")
        assert status == 200 and body == blob.data, (blob.digest, status)


def request(registry, method: str, path: str, body: bytes | None = None,
            headers: dict[str, Any] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request; a reset or a 5xx fails the property right here."""
    status, got, data = raw_request(registry.url, method, path, body, headers)
    assert status < 500, (method, path, status, data[:300])
    return status, got, data


def first_code(status: int, body: bytes) -> str:
    class _Resp:  # error_codes wants a requests-like object
        def __init__(self) -> None:
            self.content, self.status_code = body, status
            self.request = type("R", (), {"method": "GET"})()
            self.url, self.headers = "", {}

        def json(self) -> Any:
            return json.loads(body)

    return error_codes(_Resp())[0]  # type: ignore[arg-type]


def enc(value: str) -> str:
    return quote(value, safe="")


# -- names, tags, digests ------------------------------------------------------------------------

names = st.one_of(st.from_regex(NAME_RE, fullmatch=True).filter(lambda n: len(n) < 200), text,
                  st.sampled_from(["a/../b", "A/b", "a//b", "a/", "/a", "a" * 300, "a.-b", "a__b"]))


@FUZZ
@given(name=names)
def test_fuzzed_names_are_valid_when_accepted(registry, pinned, name):
    path_name = "/".join(enc(part) for part in name.split("/"))
    status, _, body = request(registry, "GET", f"/v2/{path_name}/tags/list")
    code = first_code(status, body) if status != 200 else None
    if status == 200 or code == "NAME_UNKNOWN":  # the server took it for a repository name
        assert NAME_RE.fullmatch(name) and len(name) <= 255, (name, status)
    else:
        assert (status, code) in ((400, "NAME_INVALID"), (404, "UNSUPPORTED")), (name, status)


@FUZZ
@given(tag=st.one_of(st.from_regex(TAG_RE, fullmatch=True), text, ascii_text))
def test_fuzzed_tags_are_valid_when_accepted(registry, pinned, blobs_repo, tag):
    body = pinned.image.body
    status, _, data = request(registry, "PUT", f"/v2/{blobs_repo}/manifests/{enc(tag) or '%20'}",
                              body, {"Content-Type": OCI_MANIFEST})
    if status == 201:
        assert TAG_RE.fullmatch(tag), tag
    else:
        assert status in (400, 404, 405), (tag, status, data[:200])
    request(registry, "GET", f"/v2/{blobs_repo}/manifests/{enc(tag) or '%20'}")


digests = st.one_of(
    st.builds(lambda h: f"sha256:{h}", st.from_regex(r"[a-f0-9]{64}", fullmatch=True)),
    st.builds(lambda a, h: f"{a}:{h}", ascii_text, ascii_text),
    text,
)


@FUZZ
@given(digest=digests, endpoint=st.sampled_from(["blobs", "manifests", "referrers"]),
       method=st.sampled_from(["GET", "HEAD", "DELETE"]))
def test_fuzzed_digests_are_refused_or_unknown(registry, pinned, digest, endpoint, method):
    if endpoint == "referrers" or digest in {pinned.digest, *(b.digest for b in pinned.image.blobs)}:
        method = "GET"  # never delete what the last check compares
    status, _, body = request(registry, method, f"/v2/{pinned.repo}/{endpoint}/{enc(digest)}")
    if status in (200, 202):
        assert DIGEST_RE.fullmatch(digest), (digest, endpoint, method, status)
    elif method != "HEAD" and status != 405:
        assert first_code(status, body) in (
            "DIGEST_INVALID", "BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "UNSUPPORTED", "NAME_UNKNOWN"
        ), (digest, status, body[:200])


# -- ranges --------------------------------------------------------------------------------------

range_headers = st.one_of(
    st.builds(lambda a, b: f"bytes={a}-{b}", numbers, numbers),
    st.builds(lambda a: f"bytes=-{a}", numbers),
    header_text,
)


HEADER_FIELD_LIMIT = 8190  # aiohttp's max_field_size: a longer header value is a 400 from HTTP


def _num(digits: str) -> int:
    return int(digits) if len(digits) < 40 else 10**40  # int() refuses over 4300 digits


@FUZZ
@given(header=range_headers)
@example(header=f"bytes={'9' * 5000}-{'9' * 5000}")  # over the header limit: found in CI
def test_fuzzed_ranges_answer_the_exact_slice_or_the_whole_blob(registry, pinned, header):
    blob = pinned.image.blobs[1]
    size = len(blob.data)
    status, got, body = request(registry, "GET", f"/v2/{pinned.repo}/blobs/{blob.digest}",
                                headers={"Range": header.encode()})
    m = RANGE_RE.fullmatch(header.strip().replace(" ", ""))
    if status == 200:
        assert body == blob.data
    elif status == 206:
        assert m and (m.group(1) or m.group(2)), header
        first, last = m.group(1), m.group(2)
        start = max(size - _num(last), 0) if not first else _num(first)
        end = min(_num(last), size - 1) if first and last else size - 1
        assert body == blob.data[start : end + 1], header
        assert got["content-range"] == f"bytes {start}-{end}/{size}"
    elif len(header.encode()) > HEADER_FIELD_LIMIT:
        assert status == 400, (header[:80], status)  # refused by the HTTP parser
    else:
        assert status == 416 and m, (header, status)
        assert got["content-range"] == f"bytes */{size}"


# -- uploads -------------------------------------------------------------------------------------


@FUZZ
@given(content_range=st.one_of(st.none(), st.builds(lambda a, b: f"{a}-{b}", numbers, numbers),
                               header_text),
       chunk=st.binary(max_size=64), final_digest=st.one_of(st.none(), digests),
       upload_id=st.one_of(st.none(), text, ascii_text))
def test_fuzzed_uploads_store_only_what_was_sent_under_its_digest(
    registry, pinned, blobs_repo, content_range, chunk, final_digest, upload_id
):
    status, got, _ = request(registry, "POST", f"/v2/{blobs_repo}/blobs/uploads/",
                             headers={"Content-Length": "0"})
    assert status == 202
    location = got["location"]
    if upload_id is not None:
        location = f"/v2/{blobs_repo}/blobs/uploads/{enc(upload_id) or '%20'}"
    headers = {"Content-Type": "application/octet-stream"}
    if content_range is not None:
        headers["Content-Range"] = content_range.encode()
    status, got, _ = request(registry, "PATCH", location, chunk, headers)
    sent = chunk if status == 202 else b""
    if status == 202:
        location = got["location"]
    digest = final_digest if final_digest is not None else digest_of(sent)
    status, _, body = request(registry, "PUT", f"{location}?digest={enc(digest)}", b"")
    if status == 201:
        assert digest == digest_of(sent), (digest, sent)
        _, _, stored = request(registry, "GET", f"/v2/{blobs_repo}/blobs/{digest}")
        assert stored == sent
    else:
        assert status in (400, 404, 416), (status, body[:200])


# -- manifests -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += _paths(value, (*prefix, i))
    return found


@st.composite
def manifests(draw: st.DrawFn, base: dict) -> tuple[bytes, str | None]:
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(doc)[1:]))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(text)] = draw(json_values)
        else:
            parent[path[-1]] = draw(json_values)
    data = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()
    wrap = draw(st.sampled_from(["plain"] * 6 + ["utf16", "bom", "dup", "deep", "cut", "nan"]))
    if wrap == "utf16":
        data = data.decode().encode("utf-16")
    elif wrap == "bom":
        data = b"\xef\xbb\xbf" + data
    elif wrap == "dup":
        data = data.replace(b"{", b'{"schemaVersion": 2, ', 1)
    elif wrap == "deep":
        data = data[:-1] + b', "x": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    elif wrap == "cut":
        data = data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    elif wrap == "nan":
        data = data.replace(b'"size": ', b'"size": NaN, "s": ', 1)
    content_type = draw(st.one_of(st.none(), st.sampled_from(
        [OCI_MANIFEST, "application/vnd.oci.image.index.v1+json", "application/json",
         "application/vnd.docker.distribution.manifest.v2+json", "text/plain"]), ascii_text))
    return data, content_type


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_fuzzed_manifests_are_accepted_only_when_valid(registry, pinned, blobs_repo, data):
    body, content_type = data.draw(manifests(pinned.image.json))
    headers = {"Content-Type": content_type} if content_type is not None else {}
    by_digest = data.draw(st.booleans())
    ref = digest_of(body) if by_digest else "fuzzed"
    status, _, answer = request(registry, "PUT", f"/v2/{blobs_repo}/manifests/{ref}", body,
                                headers)
    if status == 201:
        parse_manifest(body, content_type)  # our own validator agrees it is a manifest
        _, _, stored = request(registry, "GET", f"/v2/{blobs_repo}/manifests/{digest_of(body)}")
        assert stored == body, "an accepted manifest must be stored byte for byte"
    else:
        assert status in (400, 413), (status, answer[:300])
        assert first_code(status, answer) in (
            "MANIFEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "DIGEST_INVALID", "SIZE_INVALID"
        ), answer[:300]


# -- queries, headers, methods -------------------------------------------------------------------


@FUZZ
@given(endpoint=st.sampled_from(["tags/list", "_catalog", "referrers"]),
       n=st.one_of(st.none(), numbers), last=st.one_of(st.none(), text, st.binary(max_size=20)),
       artifact_type=st.one_of(st.none(), text, st.binary(max_size=20)))
def test_fuzzed_queries_never_fail_and_page_sizes_are_ascii(registry, pinned, endpoint, n, last,
                                                           artifact_type):
    path = {"tags/list": f"/v2/{pinned.repo}/tags/list", "_catalog": "/v2/_catalog",
            "referrers": f"/v2/{pinned.repo}/referrers/{pinned.digest}"}[endpoint]
    params = {"n": n, "last": last, "artifactType": artifact_type}
    query = "&".join(f"{k}={enc(v)}" for k, v in params.items() if v is not None)
    status, _, body = request(registry, "GET", f"{path}?{query}")
    if n is not None and not re.fullmatch(r"[0-9]+", n):
        assert status == 400, (n, status)
    elif status != 200:
        assert status == 400 and endpoint == "referrers", (params, status, body[:200])
        assert first_code(status, body) == "DIGEST_INVALID"


header_names = st.one_of(
    st.sampled_from(["Accept", "Content-Type", "Authorization", "Range", "If-None-Match",
                     "X-Forwarded-For", "Host", "Cookie", "Expect", "Accept-Encoding"]),
    st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,30}", fullmatch=True),
).filter(lambda h: h.lower() not in ("content-length", "transfer-encoding", "connection"))
header_values = header_text


@FUZZ
@given(method=st.one_of(st.sampled_from(METHODS), st.from_regex(r"[A-Z]{1,10}", fullmatch=True)),
       endpoint=st.sampled_from(["", "_catalog", "{repo}/tags/list", "{repo}/manifests/pinned",
                                 "{repo}/blobs/{blob}", "{repo}/blobs/uploads/",
                                 "{repo}/referrers/{digest}", "{repo}/nothing"]),
       headers=st.dictionaries(header_names, header_values, max_size=4))
def test_fuzzed_methods_and_headers_never_fail(registry, pinned, method, endpoint, headers):
    # DELETE goes to a repository nobody uses: the pinned image must survive the run.
    repo = "fuzz/absent" if method == "DELETE" else pinned.repo
    path = "/v2/" + endpoint.format(repo=repo, blob=pinned.image.blobs[0].digest,
                                    digest=pinned.digest)
    body = b"" if method in ("PUT", "PATCH", "POST") else None
    status, _, answer = request(registry, method, path, body,
                                {k: v.encode() for k, v in headers.items()})
    if method in ("PUT", "PATCH", "DELETE") and endpoint.endswith(("pinned", "{blob}")):
        assert status >= 400, (method, path, status, answer[:200])  # an empty manifest, etc.


# -- malformed HTTP on a raw socket --------------------------------------------------------------

raw_tokens = st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b)


@FUZZ
@given(method=st.one_of(st.sampled_from([b"GET", b"PUT"]), raw_tokens),
       target=st.one_of(st.sampled_from([b"/v2/", b"/v2/a/tags/list"]), raw_tokens),
       version=st.one_of(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]), raw_tokens),
       lines=st.lists(raw_tokens, max_size=4))
def test_fuzzed_raw_requests_are_answered_without_traceback(registry, pinned, method, target,
                                                            version, lines):
    lines = [line for line in lines
             if not line.lower().lstrip().startswith(
                 (b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade"))]
    payload = b" ".join([method, target, version]) + b"\r\n"
    payload += b"".join(line + b"\r\n" for line in [b"Host: x", *lines, b"Connection: close"])
    with socket.create_connection(("127.0.0.1", registry.port), timeout=30) as sock:
        sock.sendall(payload + b"\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    m = re.match(rb"HTTP/1\.[01] ([0-9]{3}) ", answer)
    assert m and int(m.group(1)) < 500, (payload, answer[:300])
