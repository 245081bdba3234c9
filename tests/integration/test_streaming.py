"""One larger (20 MiB) blob: streamed upload without Content-Length, final chunk on the PUT,
streamed download and a tail range — checks nothing is truncated or buffered wrongly."""

from __future__ import annotations

import hashlib
import os

import pytest
from support.http import describe, http, resolve
from support.oci import assert_error, blob_url, parse_range, put_final, start_upload

MIB = 1024 * 1024


@pytest.mark.slow
def test_20_mib_blob_streamed_up_and_down(registry, repo):
    pieces = [os.urandom(MIB) for _ in range(20)]
    first, last = pieces[:12], pieces[12:]
    sha = hashlib.sha256()
    for p in pieces:
        sha.update(p)
    digest = f"sha256:{sha.hexdigest()}"

    loc, _ = start_upload(registry, repo)
    r = http.patch(loc, data=iter(first), headers={"Content-Type": "application/octet-stream"})
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 202, describe(r)
    assert parse_range(r.headers.get("Range")) == (0, 12 * MIB - 1), describe(r)
    r = put_final(resolve(r), digest, b"".join(last), 12 * MIB)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest, describe(r)

    h = http.head(blob_url(registry, repo, digest))
    assert h.status_code == 200 and h.headers.get("Content-Length") == str(20 * MIB), describe(h)

    got = hashlib.sha256()
    size = 0
    with http.get(blob_url(registry, repo, digest), stream=True) as g:
        assert g.status_code == 200, describe(g)
        for chunk in g.iter_content(256 * 1024):
            got.update(chunk)
            size += len(chunk)
    assert size == 20 * MIB
    assert f"sha256:{got.hexdigest()}" == digest

    tail = http.get(blob_url(registry, repo, digest), headers={"Range": "bytes=-1000"})
    assert tail.status_code == 206, describe(tail)
    assert tail.content == pieces[-1][-1000:]
    assert tail.headers.get("Content-Range") == f"bytes {20 * MIB - 1000}-{20 * MIB - 1}/{20 * MIB}"

    mid = http.get(
        blob_url(registry, repo, digest), headers={"Range": f"bytes={MIB}-{2 * MIB - 1}"}
    )
    assert mid.status_code == 206 and mid.content == pieces[1], describe(mid)

    assert http.delete(blob_url(registry, repo, digest)).status_code == 202
    assert_error(http.head(blob_url(registry, repo, digest)), 404)
