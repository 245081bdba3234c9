"""UploadService on the embedded default: chunks in order, resumable, verified before commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from moorage.bootstrap import Registry
from moorage.oci.digest import parse_digest
from moorage.oci.errors import BlobUnknown, BlobUploadUnknown, DigestInvalid, RangeNotSatisfiable
from moorage.registry.uploads import ChunkRange, UploadStatus

from .conftest import make_registry
from .content import digest_of, events_after, push_blob

REPO = "team/app"


async def _body(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _start(registry: Registry, repository: str = REPO) -> UploadStatus:
    return asyncio.run(registry.uploads.start(repository))


def _append(registry: Registry, upload_id: str, start: int, data: bytes) -> UploadStatus:
    chunk = ChunkRange(start, start + len(data) - 1)
    return asyncio.run(registry.uploads.append(REPO, upload_id, _body(data), chunk, len(data)))


def _finish(registry: Registry, upload_id: str, digest: str) -> str:
    done = asyncio.run(registry.uploads.finish(REPO, upload_id, parse_digest(digest), _body(),
                                               None, 0))
    return str(done)


def _stored(registry: Registry, repository: str, digest: str) -> bytes:
    row = registry.blobs.locate(repository, parse_digest(digest))
    return b"".join(registry.blob_store.open_blob(row.storage_key, 0, row.size))


def test_chunks_in_order_make_the_blob_and_its_event(registry: Registry) -> None:
    parts = [b"a" * 1000, b"b" * 333, b"c" * 7]
    data = b"".join(parts)
    upload = _start(registry)
    offset = 0
    for part in parts:
        status = _append(registry, upload.id, offset, part)
        offset += len(part)
        assert status.offset == offset
    last = registry.outbox.last_id()
    assert _finish(registry, upload.id, digest_of(data)) == digest_of(data)
    assert _stored(registry, REPO, digest_of(data)) == data
    events = [(e["type"], e["repository"], e["digest"]) for e in events_after(registry, last)]
    assert events == [("BlobPushed", REPO, digest_of(data))]


def test_an_out_of_order_chunk_is_416_and_leaves_the_offset(registry: Registry) -> None:
    upload = _start(registry)
    _append(registry, upload.id, 0, b"x" * 100)
    with pytest.raises(RangeNotSatisfiable) as refused:
        _append(registry, upload.id, 150, b"y" * 10)  # a gap: bytes 100-149 never came
    assert (refused.value.code, refused.value.status) == ("BLOB_UPLOAD_INVALID", 416)
    assert refused.value.headers["Range"] == "0-99"
    assert asyncio.run(registry.uploads.status(REPO, upload.id)).offset == 100
    # The upload stays usable from where it was.
    assert _append(registry, upload.id, 100, b"y" * 10).offset == 110


def test_an_upload_resumes_in_another_registry_on_the_same_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "shared"
    first = make_registry(data_dir)
    try:
        upload = _start(first)
        _append(first, upload.id, 0, b"first half|")
    finally:
        first.close()
    second = make_registry(data_dir)
    try:
        assert asyncio.run(second.uploads.status(REPO, upload.id)).offset == len(b"first half|")
        _append(second, upload.id, len(b"first half|"), b"second half")
        data = b"first half|second half"
        assert _finish(second, upload.id, digest_of(data)) == digest_of(data)
        assert _stored(second, REPO, digest_of(data)) == data
    finally:
        second.close()


def test_a_cancelled_upload_is_unknown(registry: Registry) -> None:
    upload = _start(registry)
    _append(registry, upload.id, 0, b"abandoned")
    asyncio.run(registry.uploads.cancel(REPO, upload.id))
    with pytest.raises(BlobUploadUnknown) as gone:
        asyncio.run(registry.uploads.status(REPO, upload.id))
    assert (gone.value.code, gone.value.status) == ("BLOB_UPLOAD_UNKNOWN", 404)
    with pytest.raises(BlobUploadUnknown):
        _append(registry, upload.id, 9, b"more")


def test_a_wrong_digest_on_finish_is_refused_and_stores_no_blob(registry: Registry) -> None:
    data = b"what was sent"
    claimed = digest_of(b"something else")
    upload = _start(registry)
    _append(registry, upload.id, 0, data)
    last = registry.outbox.last_id()
    with pytest.raises(DigestInvalid) as refused:
        _finish(registry, upload.id, claimed)
    assert (refused.value.code, refused.value.status) == ("DIGEST_INVALID", 400)
    for digest in (claimed, digest_of(data)):
        with pytest.raises(BlobUnknown):
            registry.blobs.locate(REPO, parse_digest(digest))
    assert events_after(registry, last) == []
    with pytest.raises(BlobUploadUnknown):  # the session is gone with its bytes
        asyncio.run(registry.uploads.status(REPO, upload.id))


def test_a_blob_is_mounted_from_another_repository(registry: Registry) -> None:
    data = b"shared layer" * 20
    digest = push_blob(registry, "team/base", data)
    with pytest.raises(BlobUnknown):
        registry.blobs.locate("team/app", parse_digest(digest))
    assert asyncio.run(registry.blobs.mount("team/app", parse_digest(digest), ["team/base"]))
    assert _stored(registry, "team/app", digest) == data
    # Naming a source that does not hold the blob mounts nothing.
    assert not asyncio.run(registry.blobs.mount("team/other", parse_digest(digest), ["team/app2"]))
    with pytest.raises(BlobUnknown):
        registry.blobs.locate("team/other", parse_digest(digest))
