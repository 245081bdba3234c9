"""S3-compatible BlobStore: an upload is one S3 multipart upload that any node can continue.

How an upload lives in the bucket (all keys under the configured prefix):

- `blobs/<upload-id>`: the object the upload becomes. It is created by a multipart upload whose
  parts stream straight from the request body to S3; committing is CompleteMultipartUpload on
  this key, so the blob is never copied. Its key is opaque: the metadata maps digest -> key.
- `uploads/<upload-id>/<token>.json`: a checkpoint written at the end of every acknowledged
  request (and, under a fresh token each time, as a long request streams): the multipart upload
  id, the parts so far (number, ETag, size) and the pending segments. The handle the database
  keeps names the newest checkpoint, so whichever node takes the next request reads exactly the
  acknowledged state; a request that failed, or a node that was killed, wrote a checkpoint
  nobody points at.
- `uploads/<upload-id>/<token>.seg`: bytes that cannot be a part yet, because S3 wants every
  part but the last to be at least 5 MiB and the request ended short of that. The next request
  streams them at the head of its first part; a commit makes them the last part.

Parts whose size is known in advance (the request has a Content-Length) stream through with no
buffering; a body of unknown length is spooled to a local temporary file one part at a time,
since S3 needs each part's length up front. Part sizes grow with the part count so that 10,000
parts reach far beyond 100 GiB.

obstore does the plain object calls (GET with ranges, PUT, HEAD, DELETE, LIST, presigning);
obstore keeps its multipart uploads inside one process, so the resumable multipart calls
(create, upload part, complete, abort, list) are made with a small SigV4 signer (signer.py);
the writer, its checkpoints and the multipart listings are in multipart.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

import obstore
from obstore.store import S3Store

from ..base import StoredObject
from .multipart import (
    MIN_PART,
    READ_CHUNK,
    Checkpoint,
    MiB,
    S3UploadWriter,
    list_multipart_uploads,
    list_parts,
)
from .signer import (
    EMPTY_SHA256,
    PartUpload,
    S3Error,
    Signer,
    raise_for,
    url_query,
    xml_find,
)

_HANDLE_RE = re.compile(r"^s3:([a-zA-Z0-9-]{1,64}):([a-f0-9]{32}|new)$")
_KEY_RE = re.compile(r"^blobs/[a-zA-Z0-9-]{1,64}$")


@dataclass(frozen=True)
class S3Config:
    """Where the bucket is and how to sign for it (defaults from the standard AWS_* variables)."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None  # None: AWS, https://s3.<region>.amazonaws.com
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    part_size: int = 16 * MiB  # first parts; grows with the part count (see part_size_for)
    spool_dir: str | None = None  # local temp files for bodies of unknown length
    request_timeout: float = 300.0
    sse: str | None = None  # server-side encryption of every object: AES256 or aws:kms
    sse_kms_key_id: str | None = None  # the KMS key of `aws:kms` (None: the bucket's default)

    @property
    def sse_headers(self) -> dict[str, str]:
        """The headers asking S3 to encrypt an object this config writes."""
        headers: dict[str, str] = {}
        if self.sse:
            headers["x-amz-server-side-encryption"] = self.sse
            if self.sse_kms_key_id:
                headers["x-amz-server-side-encryption-aws-kms-key-id"] = self.sse_kms_key_id
        return headers

    @classmethod
    def from_url(cls, url: str, env: dict[str, str] | None = None, **overrides: Any) -> S3Config:
        """`s3://bucket/prefix` plus AWS_ENDPOINT_URL(_S3), AWS_REGION, AWS_ACCESS_KEY_ID, ..."""
        env = dict(os.environ if env is None else env)
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"storage URL must be s3://bucket[/prefix], got {url!r}")
        values: dict[str, Any] = {
            "bucket": parts.netloc,
            "prefix": parts.path.strip("/"),
            "endpoint": env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            "access_key_id": env.get("AWS_ACCESS_KEY_ID") or None,
            "secret_access_key": env.get("AWS_SECRET_ACCESS_KEY") or None,
            "session_token": env.get("AWS_SESSION_TOKEN") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def endpoint_url(self) -> str:
        return (self.endpoint or f"https://s3.{self.region}.amazonaws.com").rstrip("/")


class S3BlobStore:
    """Blobs in an S3-compatible bucket (see the module docstring for the layout)."""

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self.signer = Signer(config)
        self.prefix = config.prefix.strip("/")
        kwargs: dict[str, Any] = {
            "region": config.region,
            "virtual_hosted_style_request": False,
        }
        if config.endpoint:
            kwargs["endpoint"] = config.endpoint
        if config.access_key_id:
            kwargs["access_key_id"] = config.access_key_id
            kwargs["secret_access_key"] = config.secret_access_key
        if config.session_token:
            kwargs["session_token"] = config.session_token
        if config.sse:  # obstore's own puts (checkpoints, segments, small blobs)
            kwargs["server_side_encryption"] = config.sse
            if config.sse_kms_key_id:
                kwargs["sse_kms_key_id"] = config.sse_kms_key_id
        self.obj = S3Store(
            config.bucket,
            prefix=self.prefix or None,
            client_options={
                "allow_http": config.endpoint_url.startswith("http://"),
                "timeout": "1h",  # a 100 GiB blob streams for a long time
                "connect_timeout": "10s",
            },
            **kwargs,
        )

    # -- uploads ---------------------------------------------------------------------------

    def create_upload(self, upload_id: str) -> str:
        # Nothing is created in the bucket until bytes arrive: an empty or small upload costs
        # no multipart upload at all.
        if not re.fullmatch(r"[a-zA-Z0-9-]{1,64}", upload_id):
            raise ValueError("invalid upload id")
        return f"s3:{upload_id}:new"

    def open_upload(self, handle: str, offset: int, expected: int | None = None) -> S3UploadWriter:
        cp = self._load(handle)
        if cp.offset != offset:
            raise ValueError(f"upload checkpoint is at {cp.offset}, not {offset}")
        return S3UploadWriter(self, cp, expected)

    def read_upload(self, handle: str, length: int) -> Iterator[bytes]:
        # Parts of an unfinished multipart upload cannot be read back: finish the object (it is
        # the blob-to-be anyway), then read it. abort_upload removes it if it is not wanted.
        cp = self._load(handle)
        key = self._finalize(cp, None, 0)
        return self.open_blob(key, 0, length) if length else iter(())

    def commit_upload(self, handle: str, digest: str) -> str:
        cp = self._load(handle)
        key = self._finalize(cp, None, 0)
        self._delete_prefix(f"uploads/{cp.upload_id}/")
        return key

    def committed_key(self, handle: str, digest: str) -> str:
        return Checkpoint(self._parse(handle)[0]).key

    def abort_upload(self, handle: str) -> None:
        upload_id = self._parse(handle)[0]
        try:
            cp = self._load(handle)
        except FileNotFoundError:
            cp = None
        if cp is not None and cp.multipart_id is not None:
            self._abort_multipart(cp.key, cp.multipart_id)
        # A finished-but-unwanted object (read_upload, a digest mismatch) goes too: the key is
        # this upload's own and no blob row points at it.
        self.delete_blob(f"blobs/{upload_id}")
        self._delete_prefix(f"uploads/{upload_id}/")

    # -- blobs -----------------------------------------------------------------------------

    def blob_path(self, key: str) -> str | None:
        return None

    def open_blob(self, key: str, offset: int, length: int) -> Iterator[bytes]:
        self._check_key(key)
        if length <= 0:
            return iter(())
        result = obstore.get(self.obj, key, options={"range": (offset, offset + length)})
        return _exactly(iter(result.stream(min_chunk_size=READ_CHUNK)), length)

    def blob_exists(self, key: str) -> bool:
        self._check_key(key)
        return self._head(key) is not None

    def blob_size(self, key: str) -> int | None:
        self._check_key(key)
        head = self._head(key)
        return None if head is None else int(head["size"])

    def list_blobs(self) -> Iterator[StoredObject]:
        for batch in obstore.list(self.obj, prefix="blobs/", chunk_size=1000):
            for meta in batch:
                yield StoredObject(str(meta["path"]), int(meta["size"]),
                                   meta["last_modified"].timestamp())

    def delete_blob(self, key: str) -> None:
        self._check_key(key)
        try:
            obstore.delete(self.obj, key)
        except FileNotFoundError:
            pass

    def presigned_url(self, key: str, expires_seconds: int) -> str | None:
        """A URL a client can GET the blob from directly for `expires_seconds`."""
        self._check_key(key)
        return obstore.sign(self.obj, "GET", key, dt.timedelta(seconds=expires_seconds))

    def check(self) -> None:
        """Raise unless the bucket answers (readiness probe)."""
        self._request("HEAD", None, {})

    # -- multipart (signed here) -----------------------------------------------------------

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _request(
        self, method: str, key: str | None, query: dict[str, str], body: bytes = b"",
        ok: tuple[int, ...] = (200, 204), headers_extra: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        path = self.signer.path(None if key is None else self._full(key))
        payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        extra = {"content-length": str(len(body))} if method in ("POST", "PUT") else None
        if headers_extra:
            extra = {**(extra or {}), **headers_extra}
        headers = self.signer.headers(method, path, query, payload, extra)
        url = quote(path, safe="/-_.~") + (f"?{url_query(query)}" if query else "")
        for attempt in range(3):
            conn = self.signer.connect()
            try:
                conn.request(method, url, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException, TimeoutError):
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))
                continue
            finally:
                conn.close()
            if response.status in ok:
                return response.status, data
            if response.status >= 500 and attempt < 2:
                time.sleep(0.2 * (attempt + 1))
                continue
            raise_for(response.status, data)
        raise AssertionError("unreachable")

    def _create_multipart(self, key: str) -> str:
        # Encryption is chosen when the multipart upload is created; its parts inherit it.
        _, body = self._request("POST", key, {"uploads": ""},
                                headers_extra=self.config.sse_headers)
        upload_id = xml_find(ElementTree.fromstring(body), "UploadId")
        if not upload_id:
            raise S3Error(200, "NoUploadId", "CreateMultipartUpload answered without UploadId")
        return upload_id

    def _complete_multipart(
        self, key: str, multipart_id: str, parts: list[tuple[str, int]]
    ) -> None:
        xml = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            for n, (etag, _) in enumerate(parts, start=1)
        )
        body = f"<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>".encode()
        _, data = self._request("POST", key, {"uploadId": multipart_id}, body)
        # S3 may answer 200 and still report an error in the body.
        if b"<Error>" in data[:200]:
            raise_for(200, data)

    def _abort_multipart(self, key: str, multipart_id: str) -> None:
        try:
            self._request("DELETE", key, {"uploadId": multipart_id}, ok=(200, 204, 404))
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise

    def list_multipart_uploads(self) -> list[tuple[str, str, str]]:
        """(key relative to the prefix, multipart id, initiated) of unfinished uploads."""
        return list_multipart_uploads(self)

    def list_parts(self, key: str, multipart_id: str) -> list[tuple[int, str, int]]:
        """(number, ETag, size) of the parts S3 holds for an upload (paginated ListParts)."""
        return list_parts(self, key, multipart_id)

    # -- plain objects (obstore) -----------------------------------------------------------

    def _head(self, key: str) -> dict | None:
        try:
            return obstore.head(self.obj, key)  # type: ignore[return-value]
        except FileNotFoundError:
            return None

    def _put_bytes(self, key: str, data: bytes) -> None:
        obstore.put(self.obj, key, data, use_multipart=False)

    def _put_file(self, key: str, chunks: Iterable[bytes], size: int) -> None:
        if size <= 8 * MiB:
            self._put_bytes(key, b"".join(chunks))
        else:  # never a whole big spool in memory: obstore streams it in parts
            obstore.put(self.obj, key, chunks, chunk_size=MIN_PART * 2)

    def _read_segments(self, segments: list[tuple[str, int]]) -> Iterator[bytes]:
        for key, size in segments:
            if size:
                yield from self.open_blob_any(key, 0, size)

    def open_blob_any(self, key: str, offset: int, length: int) -> Iterator[bytes]:
        result = obstore.get(self.obj, key, options={"range": (offset, offset + length)})
        return _exactly(iter(result.stream(min_chunk_size=READ_CHUNK)), length)

    def _delete_prefix(self, prefix: str) -> None:
        keys: list[str] = []
        for batch in obstore.list(self.obj, prefix=prefix, chunk_size=1000):
            keys.extend(meta["path"] for meta in batch)
        if keys:
            try:
                obstore.delete(self.obj, keys)
            except FileNotFoundError:
                pass

    # -- finishing -------------------------------------------------------------------------

    def _finalize(self, cp: Checkpoint, spool: Iterator[bytes] | None, spooled: int) -> str:
        """Turn the upload into the object at its key; idempotent once it is there."""
        total = cp.offset
        head = self._head(cp.key)
        if head is not None and head["size"] == total and cp.multipart_id is None:
            return cp.key
        tail = cp.pending + spooled

        def tail_chunks() -> Iterator[bytes]:
            yield from self._read_segments(cp.segments)
            if spool is not None:
                yield from spool

        if cp.multipart_id is None:
            # Small blob: one plain PUT of what was gathered.
            self._put_file(cp.key, tail_chunks(), tail)
            return cp.key
        if head is not None and head["size"] == total:
            return cp.key  # completed by an earlier call (read_upload, a retried commit)
        parts = list(cp.parts)
        if tail or not parts:
            number = len(parts) + 1
            part = PartUpload(self.signer, self._full(cp.key), cp.multipart_id, number, tail)
            try:
                for chunk in tail_chunks():
                    part.send(chunk)
            except BaseException:
                part.cancel()
                raise
            parts.append((part.finish(), tail))
        try:
            self._complete_multipart(cp.key, cp.multipart_id, parts)
        except S3Error as exc:
            # A retried CompleteMultipartUpload whose first attempt went through.
            head = self._head(cp.key)
            if exc.code != "NoSuchUpload" or head is None or head["size"] != total:
                raise
        return cp.key

    # -- handles ---------------------------------------------------------------------------

    def _parse(self, handle: str) -> tuple[str, str]:
        m = _HANDLE_RE.fullmatch(handle)
        if not m:
            raise ValueError("invalid upload handle")
        return m.group(1), m.group(2)

    def _load(self, handle: str) -> Checkpoint:
        upload_id, token = self._parse(handle)
        if token == "new":
            return Checkpoint(upload_id)
        key = f"uploads/{upload_id}/{token}.json"
        try:
            raw = bytes(obstore.get(self.obj, key).bytes())
        except FileNotFoundError:
            raise FileNotFoundError(f"upload checkpoint {key} is gone") from None
        cp = Checkpoint.from_json(raw)
        if cp.upload_id != upload_id:
            raise ValueError("checkpoint belongs to another upload")
        return cp

    def _check_key(self, key: str) -> None:
        if not _KEY_RE.fullmatch(key):
            raise ValueError("invalid blob key")


def _exactly(chunks: Iterator[bytes], length: int) -> Iterator[bytes]:
    got = 0
    for chunk in chunks:
        got += len(chunk)
        yield bytes(chunk)
    if got != length:
        raise OSError(f"short read from S3: {got} of {length} bytes")
