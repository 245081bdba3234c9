"""Concurrent requests against the two-worker server: races on one upload session, on one
blob, on one tag. Nothing may be lost, duplicated or answered with a 5xx."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from support.http import describe, http
from support.oci import (
    OCI_MANIFEST,
    assert_blob_created,
    assert_error,
    blob_url,
    chunk_size_for,
    digest_of,
    get_manifest,
    list_tags,
    make_image,
    new_repo,
    patch_chunk,
    push_blob,
    put_final,
    put_manifest,
    random_bytes,
    start_upload,
    upload_chunked,
    upload_post_put,
)

THREADS = 8


def _parallel(fn, args_list):
    with ThreadPoolExecutor(len(args_list)) as pool:
        return list(pool.map(lambda a: fn(*a), args_list))


def test_concurrent_chunks_at_the_same_offset_only_one_wins(registry, repo):
    loc, post = start_upload(registry, repo)
    size = chunk_size_for(post)
    candidates = [random_bytes(size) for _ in range(THREADS)]
    results = _parallel(lambda d: patch_chunk(loc, d, 0), [(d,) for d in candidates])
    winners = [i for i, r in enumerate(results) if r.status_code == 202]
    assert len(winners) == 1, [describe(r) for r in results]
    for i, r in enumerate(results):
        if i not in winners:
            assert_error(r, 416, "BLOB_UPLOAD_INVALID")
    s = http.get(loc)
    assert s.status_code == 204 and s.headers.get("Range") == f"0-{size - 1}", describe(s)
    data = candidates[winners[0]]
    assert_blob_created(put_final(loc, digest_of(data)), digest_of(data), data)


def test_concurrent_puts_closing_the_same_session_only_one_wins(registry, repo):
    data = random_bytes(5000)
    loc, _ = start_upload(registry, repo)
    results = _parallel(lambda: put_final(loc, digest_of(data), data), [()] * THREADS)
    ok = [r for r in results if r.status_code == 201]
    assert len(ok) >= 1, [describe(r) for r in results]
    for r in results:
        if r.status_code != 201:  # the session is gone (or busy) for the others
            assert_error(r, (404, 416), "BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID")
    assert http.get(blob_url(registry, repo, digest_of(data))).content == data


def test_concurrent_pushes_of_the_same_blob_are_stored_once(registry):
    data = random_bytes(200_000)
    digest = digest_of(data)
    repos = [new_repo("conc") for _ in range(THREADS)] * 2
    results = _parallel(lambda r: upload_post_put(registry, r, data), [(r,) for r in repos])
    for r in results:
        assert r.status_code == 201, describe(r)
    for name in set(repos):
        g = http.get(blob_url(registry, name, digest))
        assert g.status_code == 200 and g.content == data, describe(g)
    root = Path(registry.data_dir) / "blobs"
    hex_digest = digest.split(":")[1]
    named = [p for p in root.rglob("*") if p.is_file() and hex_digest in str(p.relative_to(root))]
    assert len(named) == 1, named


def test_concurrent_chunked_uploads_in_one_repository(registry, repo):
    blobs = [random_bytes(1500 + i) for i in range(THREADS)]
    results = _parallel(
        lambda d: upload_chunked(registry, repo, d, chunk=512), [(b,) for b in blobs]
    )
    for data, r in zip(blobs, results, strict=True):
        assert_blob_created(r, digest_of(data), data)


def test_concurrent_tag_updates_leave_one_consistent_tag(registry, repo):
    images = [make_image() for _ in range(THREADS)]
    for m in images:
        for b in m.blobs:
            push_blob(registry, repo, b.data)
    results = _parallel(
        lambda m: put_manifest(registry, repo, "race", m.body, OCI_MANIFEST), [(m,) for m in images]
    )
    for r in results:
        assert r.status_code == 201, describe(r)
    g = get_manifest(registry, repo, "race")
    assert g.status_code == 200, describe(g)
    assert g.content in [m.body for m in images]
    assert g.headers["Docker-Content-Digest"] == digest_of(g.content)
    assert list_tags(registry, repo).json()["tags"] == ["race"]
    for m in images:  # every pushed manifest stays fetchable by digest
        assert get_manifest(registry, repo, m.digest, "HEAD").status_code == 200


def test_concurrent_delete_and_push_of_a_tag_never_5xx(registry, repo):
    m = make_image()
    for b in m.blobs:
        push_blob(registry, repo, b.data)
    put_manifest(registry, repo, "flip", m.body, OCI_MANIFEST)

    def op(i: int):
        if i % 2:
            return http.delete(get_manifest(registry, repo, "flip", "HEAD").url)
        return put_manifest(registry, repo, "flip", m.body, OCI_MANIFEST)

    results = _parallel(op, [(i,) for i in range(THREADS * 2)])
    for r in results:
        assert r.status_code in (201, 202, 404), describe(r)
    final = get_manifest(registry, repo, "flip")
    assert final.status_code in (200, 404), describe(final)
    if final.status_code == 200:
        assert final.content == m.body
    tags = list_tags(registry, repo)
    assert tags.status_code in (200, 404), describe(tags)
    if tags.status_code == 200:
        assert tags.json()["tags"] == (["flip"] if final.status_code == 200 else [])
