"""One suite every BlobStore driver passes: the filesystem store and the S3 store (SeaweedFS).

Each case plays the part of the upload service: it writes through a writer, checkpoints, and
continues from the handle with another store object, as another node would.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import requests

from moorage.storage.filesystem import FilesystemBlobStore

MiB = 1 << 20


@pytest.fixture(scope="module")
def s3_services():
    from support.backends import services_or_skip

    return services_or_skip()


@pytest.fixture(params=["filesystem", "s3"])
def make_store(request, tmp_path: Path):
    """A factory of store objects on one backing store (each call: a different 'node')."""
    if request.param == "filesystem":
        return lambda: FilesystemBlobStore(tmp_path, fsync=False)
    from moorage.storage.s3 import S3BlobStore

    services = request.getfixturevalue("s3_services")
    config = services.s3.config(part_size=5 * MiB)
    return lambda: S3BlobStore(config)


def upload(make_store, upload_id: str, chunks: list[bytes], known_length: bool = True) -> str:
    """Write each chunk as one request on a new store object; return the last handle."""
    handle = make_store().create_upload(upload_id)
    offset = 0
    for chunk in chunks:
        writer = make_store().open_upload(handle, offset, len(chunk) if known_length else None)
        try:
            for i in range(0, len(chunk), 4 * MiB):
                writer.write(chunk[i : i + 4 * MiB])
            handle = writer.checkpoint()
        finally:
            writer.close()
        offset += len(chunk)
    return handle


def read_all(store, key: str, size: int) -> bytes:
    return b"".join(store.open_blob(key, 0, size))


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("known_length", [True, False])
@pytest.mark.parametrize(
    "sizes",
    [
        [0],
        [1],
        [100_000],
        [3 * MiB, 1, 2 * MiB],  # chunks below S3's 5 MiB minimum part size
        [7 * MiB, 3 * MiB],  # a part, then a short tail
        [12 * MiB + 5, 11 * MiB + 7, 1],  # several parts
    ],
    ids=["empty", "one-byte", "small", "small-chunks", "part-and-tail", "many-parts"],
)
def test_chunked_upload_resumes_on_another_store_and_commits(make_store, sizes, known_length):
    chunks = [os.urandom(n) for n in sizes]
    data = b"".join(chunks)
    handle = upload(make_store, "up-" + os.urandom(4).hex(), chunks, known_length)
    store = make_store()
    key = store.commit_upload(handle, digest(data))
    assert store.blob_exists(key)
    assert read_all(make_store(), key, len(data)) == data


def test_commit_from_the_open_writer_needs_no_checkpoint(make_store):
    data = os.urandom(6 * MiB + 123)
    store = make_store()
    handle = store.create_upload("direct-" + os.urandom(4).hex())
    writer = store.open_upload(handle, 0, len(data))
    try:
        writer.write(data[: 4 * MiB])
        writer.write(data[4 * MiB :])
        key = writer.commit(digest(data))
    finally:
        writer.close()
    assert read_all(make_store(), key, len(data)) == data


def test_committed_key_names_the_commit_before_it_happens(make_store):
    """A chunk pack's intent records its key before the bytes are written (crash safety)."""
    data = os.urandom(3 * MiB + 7)
    store = make_store()
    handle = store.create_upload("named-" + os.urandom(4).hex())
    expected = store.committed_key(handle, digest(data))
    assert store.blob_size(expected) is None
    writer = store.open_upload(handle, 0, len(data))
    try:
        writer.write(data)
        key = writer.commit(digest(data))
    finally:
        writer.close()
    assert key == expected
    assert read_all(make_store(), key, len(data)) == data


@pytest.mark.parametrize("start, length", [(0, 1), (5, 10), (5 * MiB - 3, 7), (6 * MiB, 123)])
def test_ranged_reads_return_the_exact_slice(make_store, start, length):
    data = os.urandom(6 * MiB + 123)
    handle = upload(make_store, "range-" + os.urandom(4).hex(), [data])
    key = make_store().commit_upload(handle, digest(data))
    assert b"".join(make_store().open_blob(key, start, length)) == data[start : start + length]


def test_a_request_that_failed_leaves_the_acknowledged_state(make_store):
    first, lost, second = os.urandom(6 * MiB), os.urandom(7 * MiB), os.urandom(2 * MiB)
    handle = upload(make_store, "fail-" + os.urandom(4).hex(), [first])
    writer = make_store().open_upload(handle, len(first), len(lost))
    writer.write(lost[: 6 * MiB])  # the client goes away before the end: no checkpoint
    writer.close()
    writer = make_store().open_upload(handle, len(first), len(second))
    writer.write(second)
    handle = writer.checkpoint()
    writer.close()
    key = make_store().commit_upload(handle, digest(first + second))
    assert read_all(make_store(), key, len(first) + len(second)) == first + second


def write_until_checkpointable(writer, data: bytes, at: int, step: int = 1 * MiB) -> int:
    """Write `data` from `at` on until the writer can checkpoint; return the new position."""
    while True:
        if at >= 1 and writer.until_checkpoint() == 0:
            return at
        n = min(step, writer.until_checkpoint() or step, len(data) - at)
        assert n > 0, "the writer never became checkpointable"
        writer.write(data[at : at + n])
        at += n


@pytest.mark.parametrize("resume_from", ["newest", "older"])
@pytest.mark.parametrize("known_length", [True, False])
def test_checkpoints_mid_stream_each_resume_where_they_were_taken(
    make_store, known_length, resume_from
):
    """One long request checkpoints twice, then dies: either checkpoint (the newest, or an older
    one when the crash came before the database learned of the newer) resumes at its offset,
    and the bytes written after it are ignored."""
    data = os.urandom(30 * MiB + 11)
    store = make_store()
    handle = store.create_upload("mid-" + os.urandom(4).hex())
    writer = store.open_upload(handle, 0, len(data) if known_length else None)
    try:
        first_at = write_until_checkpointable(writer, data, 0, 3 * MiB)
        first = writer.checkpoint()
        writer.write(data[first_at : first_at + 8 * MiB])
        second_at = write_until_checkpointable(writer, data, first_at + 8 * MiB)
        second = writer.checkpoint()
        writer.write(data[second_at : second_at + 4 * MiB])  # then the server dies: no checkpoint
    finally:
        writer.close()
    assert 0 < first_at < second_at < len(data)
    handle, at = (second, second_at) if resume_from == "newest" else (first, first_at)
    writer = make_store().open_upload(handle, at, len(data) - at)
    try:
        writer.write(data[at:])
        key = writer.commit(digest(data))
    finally:
        writer.close()
    assert read_all(make_store(), key, len(data)) == data


def test_read_upload_returns_the_bytes_so_far(make_store):
    chunks = [os.urandom(6 * MiB), os.urandom(1000)]
    handle = upload(make_store, "reread-" + os.urandom(4).hex(), chunks)
    data = b"".join(chunks)
    assert b"".join(make_store().read_upload(handle, len(data))) == data
    key = make_store().commit_upload(handle, digest(data))  # still commits after a re-read
    assert read_all(make_store(), key, len(data)) == data


def test_abort_frees_the_upload(make_store):
    handle = upload(make_store, "abort-" + os.urandom(4).hex(), [os.urandom(6 * MiB)])
    store = make_store()
    store.abort_upload(handle)
    store.abort_upload(handle)  # idempotent
    with pytest.raises((FileNotFoundError, ValueError, OSError)):
        w = store.open_upload(handle, 6 * MiB, 1)
        w.write(b"x")
        w.checkpoint()


def test_delete_blob_removes_it(make_store):
    data = os.urandom(1000)
    key = make_store().commit_upload(upload(make_store, "del-" + os.urandom(4).hex(), [data]),
                                     digest(data))
    store = make_store()
    assert store.blob_exists(key)
    store.delete_blob(key)
    store.delete_blob(key)
    assert not store.blob_exists(key)


def test_check_passes_on_a_working_store(make_store):
    make_store().check()


def test_presigned_url_serves_the_blob_with_ranges_where_supported(make_store):
    data = os.urandom(3000)
    store = make_store()
    key = store.commit_upload(upload(make_store, "sign-" + os.urandom(4).hex(), [data]),
                              digest(data))
    url = store.presigned_url(key, 60)
    if isinstance(store, FilesystemBlobStore):
        assert url is None  # served with sendfile
        return
    assert url is not None
    assert requests.get(url, timeout=30).content == data
    r = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=30)
    assert r.status_code == 206 and r.content == data[10:20]


def test_blob_size_and_listing_show_what_is_stored(make_store):
    data = os.urandom(3000)
    store = make_store()
    key = store.commit_upload(upload(make_store, "ls-" + os.urandom(4).hex(), [data]),
                              digest(data))
    assert store.blob_size(key) == len(data)
    listed = {obj.key: obj for obj in store.list_blobs()}
    assert listed[key].size == len(data) and listed[key].modified > 0
    store.delete_blob(key)
    assert store.blob_size(key) is None
    assert key not in {obj.key for obj in store.list_blobs()}
