"""Blob pull, delete, repository scoping and de-duplication.

Suite A: Pull #7–#10, #22–#24, Content Management #78–#79.
Suite B: `get-missing`, `blob-head`, `blob-get`, `blob-delete` (with the atomic HEAD check).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.http import describe, http, resolve
from support.oci import (
    assert_error,
    blob_url,
    chunk_size_for,
    digest_of,
    patch_chunk,
    push_blob,
    put_final,
    random_bytes,
    random_digest,
    start_upload,
)


def test_head_unknown_blob_is_404(registry, repo, algo):
    push_blob(registry, repo, random_bytes(16))  # the repository exists, the blob does not
    r = http.head(blob_url(registry, repo, random_digest(algo)))
    assert_error(r, 404)
    assert r.content == b""


def test_get_unknown_blob_is_404_blob_unknown(registry, repo, algo):
    push_blob(registry, repo, random_bytes(16))
    r = http.get(blob_url(registry, repo, random_digest(algo)))
    assert_error(r, 404, "BLOB_UNKNOWN")


def test_get_blob_of_unknown_repository_is_404(registry, repo):
    r = http.get(blob_url(registry, repo, random_digest()))
    assert_error(r, 404, "BLOB_UNKNOWN", "NAME_UNKNOWN")


def test_head_existing_blob_has_digest_length_and_accept_ranges(registry, repo, algo):
    data = random_bytes(1234)
    digest = push_blob(registry, repo, data, algo)
    r = http.head(blob_url(registry, repo, digest))
    assert r.status_code == 200, describe(r)
    assert r.content == b""
    assert r.headers.get("Content-Length") == "1234", describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest, describe(r)
    assert r.headers.get("Accept-Ranges") == "bytes", describe(r)


def test_get_existing_blob_returns_exact_bytes_and_headers(registry, repo, algo):
    data = random_bytes(4321)
    digest = push_blob(registry, repo, data, algo)
    r = http.get(blob_url(registry, repo, digest))
    assert r.status_code == 200, describe(r)
    assert r.content == data
    assert r.headers.get("Content-Length") == str(len(data)), describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest, describe(r)
    assert r.headers.get("Accept-Ranges") == "bytes", describe(r)


@pytest.mark.parametrize("put_chunk", [False, True], ids=["chunked-multi", "put-chunk"])
def test_get_after_chunked_upload_of_min_length_chunks_has_digest_on_final_response(
    registry, repo, algo, put_chunk
):
    """Suite B `chunked multi` with the advertised OCI-Chunk-Min-Length (1 MiB): ~3 MiB.

    The digest header is a MUST on blob GET (suite B, dev profile) and is checked on the response
    the client ends up with, after following any redirect: such a blob is served by the node.
    """
    loc, post = start_upload(registry, repo)
    size = chunk_size_for(post)
    data = random_bytes(3 * size - 5)
    digest = digest_of(data, algo)
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    last = pieces.pop() if put_chunk else b""
    offset = 0
    for piece in pieces:
        r = patch_chunk(loc, piece, offset)
        assert r.status_code == 202, describe(r)
        offset += len(piece)
        loc = resolve(r)
    r = put_final(loc, digest, last, offset)
    assert r.status_code == 201, describe(r)
    g = http.get(blob_url(registry, repo, digest))
    assert g.status_code == 200, describe(g)
    assert g.content == data
    assert g.headers.get("Content-Length") == str(len(data)), describe(g)
    assert g.headers.get("Docker-Content-Digest") == digest, describe(g)


def test_delete_blob_returns_202_then_head_and_get_are_404(registry, repo, algo):
    digest = push_blob(registry, repo, random_bytes(100), algo)
    r = http.delete(blob_url(registry, repo, digest))
    assert r.status_code == 202, describe(r)
    assert_error(http.head(blob_url(registry, repo, digest)), 404)
    assert_error(http.get(blob_url(registry, repo, digest)), 404, "BLOB_UNKNOWN")


def test_delete_unknown_blob_is_404_blob_unknown(registry, repo):
    push_blob(registry, repo, random_bytes(16))
    r = http.delete(blob_url(registry, repo, random_digest()))
    assert_error(r, 404, "BLOB_UNKNOWN")


def test_delete_blob_twice_second_is_404(registry, repo):
    digest = push_blob(registry, repo, random_bytes(50))
    assert http.delete(blob_url(registry, repo, digest)).status_code == 202
    assert_error(http.delete(blob_url(registry, repo, digest)), 404, "BLOB_UNKNOWN")


def test_deleted_blob_can_be_pushed_again(registry, repo):
    data = random_bytes(77)
    digest = push_blob(registry, repo, data)
    assert http.delete(blob_url(registry, repo, digest)).status_code == 202
    push_blob(registry, repo, data)
    r = http.get(blob_url(registry, repo, digest))
    assert r.status_code == 200 and r.content == data, describe(r)


def test_blob_of_one_repository_is_not_readable_through_another(registry, repo, repo2):
    digest = push_blob(registry, repo, random_bytes(64))
    push_blob(registry, repo2, random_bytes(8))  # repo2 exists too
    assert_error(http.head(blob_url(registry, repo2, digest)), 404)
    assert_error(http.get(blob_url(registry, repo2, digest)), 404, "BLOB_UNKNOWN")
    assert_error(http.delete(blob_url(registry, repo2, digest)), 404, "BLOB_UNKNOWN")
    assert http.head(blob_url(registry, repo, digest)).status_code == 200


def test_deleting_blob_in_one_repository_keeps_it_in_the_other(registry, repo, repo2):
    data = random_bytes(300)
    digest = push_blob(registry, repo, data)
    push_blob(registry, repo2, data)
    assert http.delete(blob_url(registry, repo, digest)).status_code == 202
    assert_error(http.head(blob_url(registry, repo, digest)), 404)
    r = http.get(blob_url(registry, repo2, digest))
    assert r.status_code == 200 and r.content == data, describe(r)


def _files_named_by(data_dir: Path, hex_digest: str) -> list[Path]:
    root = data_dir / "blobs"
    return [p for p in root.rglob("*") if p.is_file() and hex_digest in str(p.relative_to(root))]


def test_identical_blob_in_two_repositories_is_stored_once(registry, repo, repo2):
    data = random_bytes(2048)
    digest = push_blob(registry, repo, data)
    hex_digest = digest.split(":", 1)[1]
    first = _files_named_by(registry.data_dir, hex_digest)
    assert first, f"no file named by {hex_digest} under {registry.data_dir / 'blobs'}"
    push_blob(registry, repo2, data, method="chunked")
    push_blob(registry, repo, data, method="post-only")
    assert _files_named_by(registry.data_dir, hex_digest) == first
    assert http.get(blob_url(registry, repo2, digest)).content == data


def test_blob_digest_header_matches_content(registry, repo):
    data = b"hello moorage"
    digest = push_blob(registry, repo, data)
    assert digest == digest_of(data)
    r = http.get(blob_url(registry, repo, digest))
    assert digest_of(r.content) == r.headers.get("Docker-Content-Digest") == digest
