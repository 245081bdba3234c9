"""Range requests on blobs (suite B `range requests` on a 2048-byte blob)."""

from __future__ import annotations

import pytest
from support.http import describe, http
from support.oci import assert_error, blob_url, push_blob, random_bytes

SIZE = 2048


@pytest.fixture(scope="module")
def ranged_blob(registry):
    from support.oci import new_repo

    repo = new_repo("range")
    data = random_bytes(SIZE)
    digest = push_blob(registry, repo, data)
    return blob_url(registry, repo, digest), data


@pytest.mark.parametrize(
    "header, start, end",
    [
        ("bytes=500-1499", 500, 1499),  # closed
        ("bytes=500-", 500, SIZE - 1),  # open-ended
        ("bytes=-500", SIZE - 500, SIZE - 1),  # suffix
        ("bytes=2000-5000", 2000, SIZE - 1),  # end past the size is clamped
        ("bytes=0-0", 0, 0),
        ("bytes=2047-", 2047, 2047),
        ("bytes=-5000", 0, SIZE - 1),  # suffix longer than the blob
    ],
)
def test_satisfiable_range_returns_206_with_exact_slice(ranged_blob, header, start, end):
    url, data = ranged_blob
    r = http.get(url, headers={"Range": header})
    assert r.status_code == 206, describe(r)
    assert r.content == data[start : end + 1]
    assert r.headers.get("Content-Length") == str(end - start + 1), describe(r)
    assert r.headers.get("Content-Range") == f"bytes {start}-{end}/{SIZE}", describe(r)


@pytest.mark.parametrize(
    "header", ["bytes=500-0", "bytes=5000-10000", "bytes=2048-", "bytes=2048-2050"]
)
def test_unsatisfiable_range_gets_416_with_size(ranged_blob, header):
    url, _ = ranged_blob
    r = http.get(url, headers={"Range": header})
    assert r.status_code == 416, describe(r)
    assert r.headers.get("Content-Range") == f"bytes */{SIZE}", describe(r)


def test_range_on_head_reports_partial_length(ranged_blob):
    url, _ = ranged_blob
    r = http.head(url, headers={"Range": "bytes=500-1499"})
    assert r.status_code in (200, 206), describe(r)
    if r.status_code == 206:
        assert r.headers.get("Content-Length") == "1000", describe(r)
        assert r.headers.get("Content-Range") == f"bytes 500-1499/{SIZE}", describe(r)
    else:
        assert r.headers.get("Content-Length") == str(SIZE), describe(r)
    assert r.content == b""


def test_get_without_range_returns_whole_blob_and_accept_ranges(ranged_blob):
    url, data = ranged_blob
    r = http.get(url)
    assert r.status_code == 200, describe(r)
    assert r.content == data
    assert r.headers.get("Accept-Ranges") == "bytes", describe(r)


def test_range_on_unknown_blob_is_404(registry, ranged_blob):
    url, _ = ranged_blob
    base = url.rsplit("/", 1)[0]
    r = http.get(base + "/sha256:" + "1" * 64, headers={"Range": "bytes=0-10"})
    assert_error(r, 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize("header", ["bytes=\uff10-\uff19", "bytes=\u0661-\u0662", "bytes=-\uff15"])
def test_range_with_non_ascii_digits_is_ignored_and_the_whole_blob_sent(ranged_blob, header):
    url, data = ranged_blob
    r = http.get(url, headers={"Range": header.encode()})
    assert r.status_code == 200, describe(r)
    assert "Content-Range" not in r.headers, describe(r)
    assert r.content == data


def test_range_with_a_5000_digit_end_is_clamped_not_a_server_error(ranged_blob):
    url, data = ranged_blob
    r = http.get(url, headers={"Range": "bytes=2000-" + "9" * 5000})
    assert r.status_code == 206, describe(r)
    assert r.content == data[2000:]
