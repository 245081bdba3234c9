"""What only the S3 store has: part sizing within S3's limits, multipart bookkeeping."""

from __future__ import annotations

import os

import pytest

from moorage.storage.s3 import (
    MAX_PARTS,
    MIN_PART,
    S3BlobStore,
    S3Config,
    min_part_for,
    part_size_for,
)

MiB, GiB = 1 << 20, 1 << 30


def test_streamed_parts_reach_well_past_100_gib_within_10000_parts():
    capacity = sum(part_size_for(n, 16 * MiB) for n in range(1, MAX_PARTS + 1))
    assert capacity > 1000 * GiB
    assert all(part_size_for(n, 16 * MiB) <= 5 * GiB for n in range(1, MAX_PARTS + 1))


def test_small_client_chunks_still_fit_100_gib_within_10000_parts():
    # A client sending 5 MiB chunks: each request's bytes become a part once they reach the
    # minimum for that part number; the minimum grows past 5,000 parts.
    total, number = 0, 1
    pending = 0
    for _ in range(10_000_000):
        pending += 5 * MiB
        if pending >= min_part_for(number):
            total += pending
            pending = 0
            number += 1
        if total >= 100 * GiB:
            break
    assert total >= 100 * GiB and number <= MAX_PARTS
    assert min_part_for(1) == MIN_PART


def test_config_from_url_reads_the_standard_aws_variables():
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ACCESS_KEY_ID": "ak",
           "AWS_SECRET_ACCESS_KEY": "sk", "AWS_REGION": "eu-west-1"}
    config = S3Config.from_url("s3://bucket/some/prefix", env=env)
    assert (config.bucket, config.prefix, config.endpoint, config.region) == (
        "bucket", "some/prefix", "http://127.0.0.1:9000", "eu-west-1")
    assert (config.access_key_id, config.secret_access_key) == ("ak", "sk")
    assert S3Config.from_url("s3://b", env={}).endpoint_url == "https://s3.us-east-1.amazonaws.com"
    with pytest.raises(ValueError):
        S3Config.from_url("http://bucket/prefix", env={})


@pytest.fixture(scope="module")
def s3(request):
    from support.backends import services_or_skip

    return S3BlobStore(services_or_skip().s3.config(part_size=5 * MiB))


def test_failed_request_aborts_the_multipart_upload_it_started(s3):
    handle = s3.create_upload("leak-" + os.urandom(4).hex())
    writer = s3.open_upload(handle, 0, 12 * MiB)
    writer.write(os.urandom(6 * MiB))  # a part is streaming: a multipart upload exists now
    assert any(key == f"blobs/{handle.split(':')[1]}" for key, _, _ in s3.list_multipart_uploads())
    writer.close()  # the request died before its checkpoint
    assert not any(key == f"blobs/{handle.split(':')[1]}"
                   for key, _, _ in s3.list_multipart_uploads())


def test_cancelled_upload_aborts_its_multipart_upload_and_checkpoints(s3):
    upload_id = "cancel-" + os.urandom(4).hex()
    handle = s3.create_upload(upload_id)
    writer = s3.open_upload(handle, 0, None)  # unknown length: spooled, then a part
    writer.write(os.urandom(6 * MiB))
    handle = writer.checkpoint()
    writer.close()
    assert any(key == f"blobs/{upload_id}" for key, _, _ in s3.list_multipart_uploads())
    parts = s3.list_parts(f"blobs/{upload_id}", s3._load(handle).multipart_id)
    assert [(n, size) for n, _, size in parts] == [(1, 6 * MiB)]
    s3.abort_upload(handle)
    assert not any(key == f"blobs/{upload_id}" for key, _, _ in s3.list_multipart_uploads())
    import obstore

    assert list(obstore.list(s3.obj, prefix=f"uploads/{upload_id}/")) in ([], [[]])


def test_commit_completes_in_place_without_a_copy(s3):
    upload_id = "inplace-" + os.urandom(4).hex()
    handle = s3.create_upload(upload_id)
    writer = s3.open_upload(handle, 0, 11 * MiB)
    data = os.urandom(11 * MiB)
    writer.write(data)
    handle = writer.checkpoint()
    writer.close()
    key = s3.commit_upload(handle, "sha256:" + "0" * 64)
    # The blob is the multipart object itself, at the upload's own key.
    assert key == f"blobs/{upload_id}"
    assert s3._head(key)["size"] == len(data)


def _encryption_of(store: S3BlobStore, key: str) -> str | None:
    """The x-amz-server-side-encryption S3 reports for the object at `key`."""
    from moorage.storage.s3.signer import EMPTY_SHA256

    path = store.signer.path(store._full(key))
    conn = store.signer.connect()
    try:
        conn.request("HEAD", path, headers=store.signer.headers("HEAD", path, {}, EMPTY_SHA256))
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        return response.getheader("x-amz-server-side-encryption")
    finally:
        conn.close()


def _commit(store: S3BlobStore, data: bytes) -> str:
    import hashlib
    import uuid

    writer = store.open_upload(store.create_upload(uuid.uuid4().hex), 0, len(data))
    writer.write(data)
    handle = writer.checkpoint()
    writer.close()
    return store.commit_upload(handle, "sha256:" + hashlib.sha256(data).hexdigest())


def test_sse_s3_encrypts_every_blob_written_in_parts_or_whole():
    """s3_sse = AES256 reaches CreateMultipartUpload (our signer) and obstore's plain puts;
    SeaweedFS implements SSE-S3, so it reports the encryption of each object."""
    from support.backends import services_or_skip

    store = S3BlobStore(services_or_skip().s3.config(part_size=5 * MiB, sse="AES256"))
    plain = S3BlobStore(services_or_skip().s3.config(part_size=5 * MiB))
    for size in (6 * MiB + 3, 1000):
        data = os.urandom(size)
        key = _commit(store, data)
        assert _encryption_of(store, key) == "AES256", size
        assert b"".join(store.open_blob(key, 0, size)) == data
    assert _encryption_of(plain, _commit(plain, os.urandom(1000))) is None


def test_sse_kms_headers_name_the_key():
    # SeaweedFS has no KMS to test against: the headers the requests carry are checked here.
    config = S3Config.from_url("s3://b/p", env={}, sse="aws:kms", sse_kms_key_id="arn:k/1")
    assert config.sse_headers == {"x-amz-server-side-encryption": "aws:kms",
                                  "x-amz-server-side-encryption-aws-kms-key-id": "arn:k/1"}
    assert S3Config.from_url("s3://b/p", env={}).sse_headers == {}
