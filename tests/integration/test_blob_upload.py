"""Blob uploads: POST, single POST, PATCH (chunked / streamed), PUT, status, cancel, digests.

Suite A: Push #25–#40 (streamed, monolithic, chunked incl. out-of-order and stale location).
Suite B: `post only`, `post+put`, `chunked single`, `stream`, `post cancel`, `chunked multi`,
`chunked multi and put chunk`, `chunked out-of-order` (+ `and put chunk`), `empty`, `emptyJSON`,
`bad digest *`, each for sha256 and sha512.
"""

from __future__ import annotations

import re
import socket
import uuid
from http.client import HTTPConnection
from urllib.parse import urlsplit

import pytest
from support.http import add_query, describe, http, resolve
from support.oci import (
    EMPTY_BLOB_DIGEST,
    EMPTY_JSON,
    EMPTY_JSON_DIGEST,
    assert_blob_created,
    assert_error,
    blob_exists,
    blob_url,
    chunk_min_length,
    chunk_size_for,
    digest_of,
    parse_range,
    patch_chunk,
    push_blob,
    put_final,
    random_bytes,
    start_upload,
    upload_chunked,
    upload_post_only,
    upload_post_put,
    upload_stream,
    uploads_url,
    v2,
)

# ----------------------------------------------------------------------------------------------
# session start


def test_post_opens_session_with_location_uuid_and_chunk_min_length(registry, repo):
    r = http.post(uploads_url(registry, repo), headers={"Content-Length": "0"})
    assert r.status_code == 202, describe(r)
    loc = r.headers.get("Location")
    assert loc, describe(r)
    assert urlsplit(resolve(r)).path.startswith(f"/v2/{repo}/blobs/uploads/"), describe(r)
    upload_id = r.headers.get("Docker-Upload-UUID")
    assert upload_id, describe(r)
    assert upload_id in loc, describe(r)
    assert re.fullmatch(r"[1-9][0-9]*", r.headers.get("OCI-Chunk-Min-Length", "")), describe(r)
    if "Range" in r.headers:
        assert parse_range(r.headers["Range"])[0] == 0, describe(r)


def test_each_post_gets_a_distinct_session(registry, repo):
    first, _ = start_upload(registry, repo)
    second, _ = start_upload(registry, repo)
    assert first != second


def test_new_upload_status_is_204_with_location_and_range(registry, repo):
    loc, _ = start_upload(registry, repo)
    r = http.get(loc)
    assert r.status_code == 204, describe(r)
    assert r.headers.get("Location"), describe(r)
    assert parse_range(r.headers.get("Range"))[0] == 0, describe(r)


# ----------------------------------------------------------------------------------------------
# the upload flows, sha256 and sha512


def test_monolithic_post_then_put_creates_blob(registry, repo, algo):
    data = random_bytes(1500)
    r = upload_post_put(registry, repo, data, algo)
    assert_blob_created(r, digest_of(data, algo), data)


def test_single_post_with_digest_and_body_creates_blob(registry, repo, algo):
    data = random_bytes(700)
    r = upload_post_only(registry, repo, data, algo)
    assert r.status_code == 201, describe(r)
    assert_blob_created(r, digest_of(data, algo), data)


def test_streamed_patch_without_content_range_then_put_creates_blob(registry, repo, algo):
    data = random_bytes(5000)
    loc, _ = start_upload(registry, repo)
    r = patch_chunk(loc, data, None)
    assert r.status_code == 202, describe(r)
    assert r.headers.get("Location"), describe(r)
    assert parse_range(r.headers.get("Range")) == (0, len(data) - 1), describe(r)
    r = put_final(resolve(r), digest_of(data, algo))
    assert_blob_created(r, digest_of(data, algo), data)


def test_chunked_single_chunk_then_put_creates_blob(registry, repo, algo):
    data = random_bytes(512)
    loc, _ = start_upload(registry, repo)
    r = patch_chunk(loc, data, 0)
    assert r.status_code == 202, describe(r)
    assert parse_range(r.headers.get("Range")) == (0, 511), describe(r)
    assert_blob_created(put_final(resolve(r), digest_of(data, algo)), digest_of(data, algo), data)


def test_chunked_multi_chunks_then_put_creates_blob(registry, repo, algo):
    loc, post = start_upload(registry, repo)
    size = chunk_size_for(post)
    data = random_bytes(3 * size - 5)  # 3067 bytes with 1 KiB chunks, like suite B
    offset = 0
    while offset < len(data):
        piece = data[offset : offset + size]
        r = patch_chunk(loc, piece, offset)
        assert r.status_code == 202, describe(r)
        assert r.headers.get("Location"), describe(r)
        offset += len(piece)
        assert parse_range(r.headers.get("Range")) == (0, offset - 1), describe(r)
        loc = resolve(r)
    assert_blob_created(put_final(loc, digest_of(data, algo)), digest_of(data, algo), data)


def test_chunked_multi_with_last_chunk_on_put_creates_blob(registry, repo, algo):
    data = random_bytes(3067)
    r = upload_chunked(registry, repo, data, algo, put_last_chunk=True)
    assert_blob_created(r, digest_of(data, algo), data)


def test_closing_put_without_content_length_header_is_accepted(registry, repo):
    """Suite A needs a PUT with an empty body and no Content-Length at all to work."""
    data = random_bytes(3000)
    loc, _ = start_upload(registry, repo)
    r = patch_chunk(loc, data, None)
    assert r.status_code == 202, describe(r)
    target = urlsplit(add_query(resolve(r), {"digest": digest_of(data)}))
    conn = HTTPConnection("127.0.0.1", registry.port, timeout=30)
    try:
        conn.putrequest("PUT", f"{target.path}?{target.query}", skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 201, (resp.status, body[:300])
        assert resp.getheader("Docker-Content-Digest") == digest_of(data)
        assert resp.getheader("Location")
    finally:
        conn.close()
    assert http.get(blob_url(registry, repo, digest_of(data))).content == data


def test_put_with_final_chunk_without_content_range_appends_it(registry, repo):
    loc, post = start_upload(registry, repo)
    size = chunk_size_for(post)
    data = random_bytes(size + 100)
    r = patch_chunk(loc, data[:size], 0)
    assert r.status_code == 202, describe(r)
    r = http.put(
        add_query(resolve(r), {"digest": digest_of(data)}),
        data=data[size:],
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_blob_created(r, digest_of(data), data)


def test_streamed_patch_with_chunked_transfer_encoding(registry, repo):
    parts = [random_bytes(10_000) for _ in range(5)]
    data = b"".join(parts)
    loc, _ = start_upload(registry, repo)
    r = http.patch(loc, data=iter(parts), headers={"Content-Type": "application/octet-stream"})
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 202, describe(r)
    assert parse_range(r.headers.get("Range")) == (0, len(data) - 1), describe(r)
    assert_blob_created(put_final(resolve(r), digest_of(data)), digest_of(data), data)


def test_two_streamed_patches_append(registry, repo):
    a, b = random_bytes(3000), random_bytes(2000)
    loc, _ = start_upload(registry, repo)
    r = patch_chunk(loc, a, None)
    assert r.status_code == 202, describe(r)
    r = patch_chunk(resolve(r), b, None)
    assert r.status_code == 202, describe(r)
    assert parse_range(r.headers.get("Range")) == (0, 4999), describe(r)
    assert_blob_created(put_final(resolve(r), digest_of(a + b)), digest_of(a + b), a + b)


def test_many_chunks_each_on_a_new_connection(registry, repo):
    """Every request opens a new connection, so chunks land on different worker processes."""
    loc, post = start_upload(registry, repo)
    size = chunk_size_for(post)
    data = random_bytes(size * 8)
    for i in range(8):
        r = patch_chunk(loc, data[i * size : (i + 1) * size], i * size)
        assert r.status_code == 202, describe(r)
        loc = resolve(r)
        status = http.get(loc)
        assert status.status_code == 204, describe(status)
        assert parse_range(status.headers.get("Range")) == (0, (i + 1) * size - 1)
    assert_blob_created(put_final(loc, digest_of(data)), digest_of(data), data)


def test_interleaved_sessions_in_one_repository_do_not_mix(registry, repo):
    loc_a, post = start_upload(registry, repo)
    loc_b, _ = start_upload(registry, repo)
    size = chunk_size_for(post)
    a, b = random_bytes(2 * size), random_bytes(2 * size)
    for i in range(2):
        ra = patch_chunk(loc_a, a[i * size : (i + 1) * size], i * size)
        rb = patch_chunk(loc_b, b[i * size : (i + 1) * size], i * size)
        assert ra.status_code == rb.status_code == 202, (describe(ra), describe(rb))
        loc_a, loc_b = resolve(ra), resolve(rb)
    assert_blob_created(put_final(loc_b, digest_of(b)), digest_of(b), b)
    assert_blob_created(put_final(loc_a, digest_of(a)), digest_of(a), a)


def test_post_with_digest_algorithm_sha512_is_accepted(registry, repo):
    data = random_bytes(2000)
    loc, _ = start_upload(registry, repo, **{"digest-algorithm": "sha512"})
    r = patch_chunk(loc, data, 0)
    assert r.status_code == 202, describe(r)
    r = put_final(resolve(r), digest_of(data, "sha512"))
    assert_blob_created(r, digest_of(data, "sha512"), data)


def test_put_with_sha512_digest_returns_sha512_digest_and_location(registry, repo):
    data = random_bytes(999)
    loc, _ = start_upload(registry, repo)  # no digest-algorithm parameter
    r = put_final(loc, digest_of(data, "sha512"), data)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest_of(data, "sha512"), describe(r)
    assert digest_of(data, "sha512").split(":")[1] in r.headers["Location"], describe(r)
    h = http.head(blob_url(registry, repo, digest_of(data, "sha512")))
    assert h.status_code == 200, describe(h)
    assert h.headers.get("Docker-Content-Digest") == digest_of(data, "sha512"), describe(h)


def test_unsupported_digest_algorithm_on_post_is_400(registry, repo):
    r = http.post(add_query(uploads_url(registry, repo), {"digest-algorithm": "md5"}))
    assert_error(r, 400, "DIGEST_INVALID", "UNSUPPORTED")


# ----------------------------------------------------------------------------------------------
# locations and status


def test_patch_response_has_location_and_inclusive_range(registry, repo):
    loc, _ = start_upload(registry, repo)
    r = patch_chunk(loc, random_bytes(100), 0)
    assert r.status_code == 202, describe(r)
    assert r.headers.get("Location"), describe(r)
    assert r.headers.get("Range") == "0-99", describe(r)


def test_upload_status_returns_204_with_location_and_range(registry, repo):
    loc, _ = start_upload(registry, repo)
    r = patch_chunk(loc, random_bytes(300), 0)
    assert r.status_code == 202, describe(r)
    s = http.get(resolve(r))
    assert s.status_code == 204, describe(s)
    assert s.headers.get("Location"), describe(s)
    assert s.headers.get("Range") == "0-299", describe(s)
    assert s.content == b""


def test_original_location_stays_valid_for_whole_session(registry, repo):
    """Suite A #36–#40: chunk 1, retry chunk 1 on the POST location (416), GET the POST
    location (204, Range 0-21), chunk 2, PUT — all on the original Location."""
    original, post = start_upload(registry, repo)
    first = max(22, chunk_min_length(post))
    data = random_bytes(first + 20)
    r = patch_chunk(original, data[:first], 0)
    assert r.status_code == 202, describe(r)
    assert parse_range(r.headers.get("Range")) == (0, first - 1), describe(r)
    # resend chunk 1 to the original location: out of order now
    retry = patch_chunk(original, data[:first], 0)
    assert_error(retry, 416, "BLOB_UPLOAD_INVALID")
    s = http.get(original)
    assert s.status_code == 204, describe(s)
    assert s.headers.get("Location"), describe(s)
    assert parse_range(s.headers.get("Range")) == (0, first - 1), describe(s)
    r = patch_chunk(original, data[first:], first)
    assert r.status_code == 202, describe(r)
    assert r.headers.get("Location"), describe(r)
    assert parse_range(r.headers.get("Range")) == (0, len(data) - 1), describe(r)
    assert_blob_created(put_final(original, digest_of(data)), digest_of(data), data)


def test_suite_a_chunk_sizes_below_min_length_are_accepted(registry, repo):
    """Suite A v1.1.1 sends blob B as a 22-byte and a 20-byte chunk without reading
    OCI-Chunk-Min-Length: the advertised minimum is advice, not a reason to reject."""
    data = random_bytes(42)
    original, _ = start_upload(registry, repo)
    r = patch_chunk(original, data[:22], 0)
    assert r.status_code == 202, describe(r)
    assert r.headers.get("Range") == "0-21", describe(r)
    assert_error(patch_chunk(original, data[:22], 0), 416, "BLOB_UPLOAD_INVALID")
    s = http.get(original)
    assert s.status_code == 204 and s.headers.get("Range") == "0-21", describe(s)
    r = patch_chunk(original, data[22:], 22)
    assert r.status_code == 202, describe(r)
    assert r.headers.get("Range") == "0-41", describe(r)
    assert_blob_created(put_final(original, digest_of(data)), digest_of(data), data)


def test_many_tiny_chunks(registry, repo):
    data = random_bytes(64)
    loc, _ = start_upload(registry, repo)
    for i in range(0, 64, 8):
        r = patch_chunk(loc, data[i : i + 8], i)
        assert r.status_code == 202, describe(r)
        loc = resolve(r)
    assert_blob_created(put_final(loc, digest_of(data)), digest_of(data), data)


# ----------------------------------------------------------------------------------------------
# out-of-order / overlapping chunks


def _assert_status_range(location: str, last: int | None) -> None:
    s = http.get(location)
    assert s.status_code == 204, describe(s)
    assert s.headers.get("Location"), describe(s)
    if last is None:  # empty session: any 0-N is accepted (suite B)
        assert parse_range(s.headers.get("Range"))[0] == 0, describe(s)
    else:
        assert parse_range(s.headers.get("Range")) == (0, last), describe(s)


def test_out_of_order_chunk_gets_416_and_upload_stays_usable(registry, repo, algo):
    """Suite A #35 and suite B `chunked out-of-order` (skipping ahead before each chunk)."""
    loc, post = start_upload(registry, repo)
    size = chunk_size_for(post)
    data = random_bytes(3 * size - 5)
    offset = 0
    while offset < len(data):
        piece = data[offset : offset + size]
        ahead = data[offset + size : offset + 2 * size] or piece
        bad = patch_chunk(loc, ahead, offset + size)
        assert_error(bad, 416, "BLOB_UPLOAD_INVALID")
        _assert_status_range(loc, offset - 1 if offset else None)
        r = patch_chunk(loc, piece, offset)
        assert r.status_code == 202, describe(r)
        offset += len(piece)
        loc = resolve(r)
    assert_blob_created(put_final(loc, digest_of(data, algo)), digest_of(data, algo), data)


def test_resent_chunk_from_zero_gets_416_and_upload_stays_usable(registry, repo, algo):
    """Suite B `chunked out-of-order`, variant re-sending from offset 0 before each chunk."""
    loc, post = start_upload(registry, repo)
    size = chunk_size_for(post)
    data = random_bytes(3 * size - 5)
    offset = 0
    while offset < len(data):
        piece = data[offset : offset + size]
        if offset:
            bad = patch_chunk(loc, data[:size], 0)
            assert_error(bad, 416, "BLOB_UPLOAD_INVALID")
            _assert_status_range(loc, offset - 1)
        r = patch_chunk(loc, piece, offset)
        assert r.status_code == 202, describe(r)
        offset += len(piece)
        loc = resolve(r)
    assert_blob_created(put_final(loc, digest_of(data, algo)), digest_of(data, algo), data)


def test_out_of_order_last_chunk_on_put_gets_416_and_upload_stays_usable(registry, repo, algo):
    """Suite B `chunked out-of-order and put chunk`: the wrong range arrives on the PUT."""
    loc, post = start_upload(registry, repo)
    size = chunk_size_for(post)
    data = random_bytes(2 * size + 50)
    for i in range(2):
        r = patch_chunk(loc, data[i * size : (i + 1) * size], i * size)
        assert r.status_code == 202, describe(r)
        loc = resolve(r)
    last = data[2 * size :]
    bad = put_final(loc, digest_of(data, algo), last, 2 * size + 10)
    assert_error(bad, 416, "BLOB_UPLOAD_INVALID")
    assert not blob_exists(registry, repo, digest_of(data, algo))
    _assert_status_range(loc, 2 * size - 1)
    r = put_final(loc, digest_of(data, algo), last, 2 * size)
    assert_blob_created(r, digest_of(data, algo), data)


def test_first_chunk_not_starting_at_zero_gets_416(registry, repo):
    loc, _ = start_upload(registry, repo)
    data = random_bytes(2048)
    assert_error(patch_chunk(loc, data[1024:], 1024), 416, "BLOB_UPLOAD_INVALID")
    _assert_status_range(loc, None)
    r = patch_chunk(loc, data, 0)
    assert r.status_code == 202, describe(r)
    assert_blob_created(put_final(resolve(r), digest_of(data)), digest_of(data), data)


def test_overlapping_chunk_gets_416_and_upload_stays_usable(registry, repo):
    loc, post = start_upload(registry, repo)
    size = chunk_size_for(post)
    data = random_bytes(2 * size)
    r = patch_chunk(loc, data[:size], 0)
    assert r.status_code == 202, describe(r)
    loc = resolve(r)
    overlap = patch_chunk(loc, data[size - 10 :], size - 10)
    assert_error(overlap, 416, "BLOB_UPLOAD_INVALID")
    _assert_status_range(loc, size - 1)
    r = patch_chunk(loc, data[size:], size)
    assert r.status_code == 202, describe(r)
    assert_blob_created(put_final(resolve(r), digest_of(data)), digest_of(data), data)


def test_content_range_not_matching_body_length_is_rejected(registry, repo):
    loc, _ = start_upload(registry, repo)
    data = random_bytes(100)
    bad = http.patch(
        loc,
        data=data,
        headers={"Content-Type": "application/octet-stream", "Content-Range": "0-199"},
    )
    assert_error(bad, (400, 416), "SIZE_INVALID", "BLOB_UPLOAD_INVALID")
    _assert_status_range(loc, None)
    r = patch_chunk(loc, data, 0)
    assert r.status_code == 202, describe(r)
    assert_blob_created(put_final(resolve(r), digest_of(data)), digest_of(data), data)


def test_malformed_content_range_is_rejected(registry, repo):
    loc, _ = start_upload(registry, repo)
    bad = http.patch(
        loc,
        data=b"x" * 10,
        headers={"Content-Type": "application/octet-stream", "Content-Range": "zero-nine"},
    )
    assert_error(bad, (400, 416), "BLOB_UPLOAD_INVALID", "SIZE_INVALID")


# ----------------------------------------------------------------------------------------------
# session lifetime


def test_cancel_upload_returns_204_then_upload_is_unknown(registry, repo):
    loc, _ = start_upload(registry, repo)
    r = patch_chunk(loc, random_bytes(64), 0)
    assert r.status_code == 202, describe(r)
    d = http.delete(loc)
    assert d.status_code == 204, describe(d)
    assert_error(http.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch_chunk(loc, random_bytes(8), 64), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(put_final(loc, digest_of(b"x"), b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(http.delete(loc), 404, "BLOB_UPLOAD_UNKNOWN")


def test_finished_upload_session_is_gone(registry, repo):
    data = random_bytes(100)
    loc, _ = start_upload(registry, repo)
    assert put_final(loc, digest_of(data), data).status_code == 201
    assert_error(http.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch_chunk(loc, data, 100), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(put_final(loc, digest_of(data)), 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_unknown_upload_session_is_404_blob_upload_unknown(registry, repo, method):
    push_blob(registry, repo, random_bytes(8))
    url = v2(registry, f"{repo}/blobs/uploads/{uuid.uuid4()}")
    if method == "PUT":
        url = add_query(url, {"digest": digest_of(b"abc")})
    body = b"abc" if method in ("PATCH", "PUT") else None
    r = http.request(method, url, data=body)
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_session_is_bound_to_its_repository(registry, repo, repo2):
    loc, _ = start_upload(registry, repo)
    start_upload(registry, repo2)
    other = loc.replace(f"/v2/{repo}/", f"/v2/{repo2}/")
    assert other != loc
    assert_error(http.get(other), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch_chunk(other, b"abc", 0), 404, "BLOB_UPLOAD_UNKNOWN")
    s = http.get(loc)
    assert s.status_code == 204, describe(s)


# ----------------------------------------------------------------------------------------------
# special blobs


@pytest.mark.parametrize("flow", ["post-put", "post-only", "stream"])
def test_zero_byte_blob_push_head_get_delete(registry, repo, flow):
    data = b""
    if flow == "post-put":
        r = upload_post_put(registry, repo, data)
    elif flow == "post-only":
        r = upload_post_only(registry, repo, data)
    else:
        r = upload_stream(registry, repo, data)
    assert_blob_created(r, EMPTY_BLOB_DIGEST, data)
    h = http.head(blob_url(registry, repo, EMPTY_BLOB_DIGEST))
    assert h.status_code == 200 and h.headers.get("Content-Length") == "0", describe(h)
    g = http.get(blob_url(registry, repo, EMPTY_BLOB_DIGEST))
    assert g.status_code == 200 and g.content == b"", describe(g)
    assert http.delete(blob_url(registry, repo, EMPTY_BLOB_DIGEST)).status_code == 202
    assert_error(http.head(blob_url(registry, repo, EMPTY_BLOB_DIGEST)), 404)


def test_empty_json_blob_push_head_get_delete(registry, repo):
    assert digest_of(EMPTY_JSON) == EMPTY_JSON_DIGEST
    r = upload_post_put(registry, repo, EMPTY_JSON)
    assert_blob_created(r, EMPTY_JSON_DIGEST, EMPTY_JSON)
    h = http.head(blob_url(registry, repo, EMPTY_JSON_DIGEST))
    assert h.status_code == 200 and h.headers.get("Content-Length") == "2", describe(h)
    assert http.delete(blob_url(registry, repo, EMPTY_JSON_DIGEST)).status_code == 202
    assert_error(http.head(blob_url(registry, repo, EMPTY_JSON_DIGEST)), 404)


def test_pushing_an_existing_blob_again_succeeds(registry, repo):
    data = random_bytes(256)
    push_blob(registry, repo, data)
    r = upload_post_put(registry, repo, data)
    assert_blob_created(r, digest_of(data), data)


# ----------------------------------------------------------------------------------------------
# bad digests (content does not match)


def _wrong_digest(data: bytes, algo: str) -> str:
    return digest_of(data + b"-not-this", algo)


def _assert_not_stored(registry, repo, data: bytes, claimed: str, algo: str) -> None:
    assert not blob_exists(registry, repo, claimed)
    assert not blob_exists(registry, repo, digest_of(data, algo))


def test_bad_digest_on_post_only_is_400_digest_invalid(registry, repo, algo):
    data = random_bytes(512)
    wrong = _wrong_digest(data, algo)
    r = http.post(
        add_query(uploads_url(registry, repo), {"digest": wrong}),
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_error(r, 400, "DIGEST_INVALID")
    _assert_not_stored(registry, repo, data, wrong, algo)


def test_bad_digest_on_post_put_is_400_digest_invalid(registry, repo, algo):
    data = random_bytes(512)
    wrong = _wrong_digest(data, algo)
    loc, _ = start_upload(registry, repo)
    assert_error(put_final(loc, wrong, data), 400, "DIGEST_INVALID")
    _assert_not_stored(registry, repo, data, wrong, algo)


def test_bad_digest_on_chunked_is_400_digest_invalid(registry, repo, algo):
    loc, post = start_upload(registry, repo)
    size = chunk_size_for(post)
    data = random_bytes(2 * size)
    wrong = _wrong_digest(data, algo)
    for i in range(2):
        r = patch_chunk(loc, data[i * size : (i + 1) * size], i * size)
        assert r.status_code == 202, describe(r)
        loc = resolve(r)
    assert_error(put_final(loc, wrong), 400, "DIGEST_INVALID")
    _assert_not_stored(registry, repo, data, wrong, algo)


def test_bad_digest_on_chunked_with_put_chunk_is_400_digest_invalid(registry, repo, algo):
    loc, post = start_upload(registry, repo)
    size = chunk_size_for(post)
    data = random_bytes(2 * size)
    wrong = _wrong_digest(data, algo)
    r = patch_chunk(loc, data[:size], 0)
    assert r.status_code == 202, describe(r)
    assert_error(put_final(resolve(r), wrong, data[size:], size), 400, "DIGEST_INVALID")
    _assert_not_stored(registry, repo, data, wrong, algo)


def test_bad_digest_on_stream_is_400_digest_invalid(registry, repo, algo):
    data = random_bytes(4000)
    wrong = _wrong_digest(data, algo)
    loc, _ = start_upload(registry, repo)
    r = patch_chunk(loc, data, None)
    assert r.status_code == 202, describe(r)
    assert_error(put_final(resolve(r), wrong), 400, "DIGEST_INVALID")
    _assert_not_stored(registry, repo, data, wrong, algo)


# ----------------------------------------------------------------------------------------------
# malformed digests: always 400, never 500

MALFORMED_DIGESTS = [
    "sha256:xyz",
    "sha256:" + "0" * 63,
    "sha256:" + "0" * 65,
    "sha256:" + "A" * 64,
    "sha256:",
    "sha256",
    ":" + "0" * 64,
    "notadigest",
    "sha512:" + "0" * 64,
    "sha256:baddigeststring",
    "sha256:" + "0" * 62 + "zz",
]


@pytest.mark.parametrize("bad", MALFORMED_DIGESTS)
def test_malformed_digest_on_put_is_400_digest_invalid(registry, repo, bad):
    loc, _ = start_upload(registry, repo)
    r = put_final(loc, bad, b"some bytes")
    assert_error(r, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("bad", ["sha256:xyz", "notadigest", "sha512:" + "0" * 64])
def test_malformed_digest_on_single_post_is_400_digest_invalid(registry, repo, bad):
    r = http.post(add_query(uploads_url(registry, repo), {"digest": bad}), data=b"some bytes")
    assert_error(r, 400, "DIGEST_INVALID")


def test_unsupported_digest_algorithm_on_put_is_400(registry, repo):
    loc, _ = start_upload(registry, repo)
    r = put_final(loc, "md5:" + "0" * 32, b"some bytes")
    assert_error(r, 400, "DIGEST_INVALID", "UNSUPPORTED")


@pytest.mark.parametrize("bad", ["sha256:xyz", "sha256:" + "A" * 64, "notadigest", "sha1:abc"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_malformed_digest_in_blob_path_is_400_digest_invalid(registry, repo, bad, method):
    push_blob(registry, repo, random_bytes(8))
    r = http.request(method, blob_url(registry, repo, bad))
    assert_error(r, 400, "DIGEST_INVALID")


def test_put_without_digest_is_400_digest_invalid(registry, repo):
    loc, _ = start_upload(registry, repo)
    r = http.put(loc, data=b"abc", headers={"Content-Type": "application/octet-stream"})
    assert_error(r, 400, "DIGEST_INVALID")


# ----------------------------------------------------------------------------------------------
# size problems


def test_truncated_body_is_rejected_and_not_stored(registry, repo):
    """Content-Length says 100 but the client sends 50 bytes and closes its side: the
    server must not turn those 50 bytes into a blob; it drops the request without an answer."""
    loc, _ = start_upload(registry, repo)
    data = random_bytes(50)
    target = urlsplit(add_query(loc, {"digest": digest_of(data)}))
    path = target.path + "?" + target.query
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: {registry.host}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 100\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", registry.port), timeout=15) as s:
        s.sendall(head + data)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    # aiohttp sees the half-close as the connection lost mid-body: the request is dropped and
    # nothing is answered (there is no one to read a 400 in the usual client).
    assert reply == b"", f"truncated PUT answered {reply[:400]!r}"
    assert not blob_exists(registry, repo, digest_of(data))


def test_declared_content_length_larger_than_body_on_post_only_not_stored(registry, repo):
    data = random_bytes(40)
    target = urlsplit(add_query(uploads_url(registry, repo), {"digest": digest_of(data)}))
    head = (
        f"POST {target.path}?{target.query} HTTP/1.1\r\nHost: {registry.host}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 80\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", registry.port), timeout=15) as s:
        s.sendall(head + data)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert reply == b"", f"answered {reply[:400]!r}"  # dropped, as a truncated PUT above
    assert not blob_exists(registry, repo, digest_of(data))


# ----------------------------------------------------------------------------------------------
# more edge cases


def test_wrong_bytes_for_an_existing_digest_are_still_rejected(registry, repo):
    """A blob with digest D already exists: uploading other bytes that claim to be D must
    still fail verification (no short-cut on "already have it")."""
    data = random_bytes(700)
    digest = push_blob(registry, repo, data)
    loc, _ = start_upload(registry, repo)
    assert_error(put_final(loc, digest, random_bytes(700)), 400, "DIGEST_INVALID")
    r = http.post(add_query(uploads_url(registry, repo), {"digest": digest}), data=b"garbage")
    assert_error(r, 400, "DIGEST_INVALID")
    g = http.get(blob_url(registry, repo, digest))
    assert g.status_code == 200 and g.content == data, describe(g)


def test_digest_query_with_percent_encoded_colon(registry, repo):
    """Go clients encode the query with url.Values, which sends `sha256%3A<hex>`."""
    data = random_bytes(300)
    digest = digest_of(data)
    loc, _ = start_upload(registry, repo)
    sep = "&" if "?" in loc else "?"
    r = http.put(
        f"{loc}{sep}digest={digest.replace(':', '%3A')}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_blob_created(r, digest, data)
    r = http.post(f"{uploads_url(registry, repo)}?digest={digest.replace(':', '%3A')}", data=data)
    assert_blob_created(r, digest, data)


def test_empty_patch_does_not_break_the_session(registry, repo):
    data = random_bytes(1000)
    loc, _ = start_upload(registry, repo)
    r = http.patch(loc, data=b"", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code < 500, describe(r)
    r = patch_chunk(loc, data, None)
    assert r.status_code == 202, describe(r)
    assert parse_range(r.headers.get("Range")) == (0, 999), describe(r)
    assert_blob_created(put_final(loc, digest_of(data)), digest_of(data), data)
