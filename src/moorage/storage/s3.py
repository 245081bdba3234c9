"""S3-compatible BlobStore: an upload is one S3 multipart upload that any node can continue.

How an upload lives in the bucket (all keys under the configured prefix):

- `blobs/<upload-id>`: the object the upload becomes. It is created by a multipart upload whose
  parts stream straight from the request body to S3; committing is CompleteMultipartUpload on
  this key, so the blob is never copied. Its key is opaque: the metadata maps digest -> key.
- `uploads/<upload-id>/<token>.json`: a checkpoint written at the end of every acknowledged
  request (and, under a fresh token each time, as a long request streams): the multipart upload
  id, the parts so far (number, ETag, size) and the pending segments. The handle the database keeps names the newest checkpoint, so whichever node takes
  the next request reads exactly the acknowledged state; a request that failed, or a node that
  was killed, wrote a checkpoint nobody points at.
- `uploads/<upload-id>/<token>.seg`: bytes that cannot be a part yet, because S3 wants every
  part but the last to be at least 5 MiB and the request ended short of that. The next request
  streams them at the head of its first part; a commit makes them the last part.

Parts whose size is known in advance (the request has a Content-Length) stream through with no
buffering; a body of unknown length is spooled to a local temporary file one part at a time,
since S3 needs each part's length up front. Part sizes grow with the part count so that 10,000
parts reach far beyond 100 GiB.

obstore does the plain object calls (GET with ranges, PUT, HEAD, DELETE, LIST, presigning);
obstore keeps its multipart uploads inside one process, so the resumable multipart calls
(create, upload part, complete, abort, list) are made here with a small SigV4 signer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

import obstore
from obstore.store import S3Store

MiB = 1 << 20
MIN_PART = 5 * MiB  # S3's minimum size of every part but the last
MAX_PARTS = 10_000
READ_CHUNK = 1 * MiB
_HANDLE_RE = re.compile(r"^s3:([a-zA-Z0-9-]{1,64}):([a-f0-9]{32}|new)$")
_KEY_RE = re.compile(r"^blobs/[a-zA-Z0-9-]{1,64}$")
_MAGIC = "moorage-s3-upload/1"


class S3Error(OSError):
    """An S3 request failed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"S3 {status} {code}: {message}")
        self.status, self.code = status, code


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


def part_size_for(part_number: int, base: int) -> int:
    """Target size of part `part_number`: doubles every 1,000 parts (16 MiB base: ~16 TiB)."""
    # Capped below S3's 5 GiB part limit, leaving room for a final remainder folded in.
    return min(base << ((part_number - 1) // 1000), 4 << 30)


def min_part_for(part_number: int) -> int:
    """Smallest part worth cutting at the end of a request.

    5 MiB (S3's minimum) while parts are plentiful; past 5,000 parts small chunks are gathered
    into bigger parts so that clients sending 5 MiB chunks still fit a big blob in 10,000 parts.
    """
    if part_number <= 5000:
        return MIN_PART
    return min(MIN_PART << ((part_number - 5001) // 1000 + 1), 1 << 30)


# ------------------------------------------------------------------------------------------------
# SigV4 for the calls obstore does not expose


class _Signer:
    def __init__(self, config: S3Config) -> None:
        self.config = config
        split = urlsplit(config.endpoint_url)
        self.https = split.scheme == "https"
        self.host = split.netloc
        self.base_path = split.path.rstrip("/")

    def path(self, key: str | None) -> str:
        path = f"{self.base_path}/{self.config.bucket}"
        return path if key is None else f"{path}/{key}"

    def headers(
        self, method: str, path: str, query: dict[str, str], payload_sha256: str,
        extra: dict[str, str] | None = None,
    ) -> dict[str, str]:
        cfg = self.config
        now = dt.datetime.now(dt.UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        headers = {"host": self.host, "x-amz-date": amz_date,
                   "x-amz-content-sha256": payload_sha256}
        if cfg.session_token:
            headers["x-amz-security-token"] = cfg.session_token
        for k, v in (extra or {}).items():
            headers[k.lower()] = v
        names = sorted(headers)
        canonical = "\n".join([
            method,
            quote(path, safe="/-_.~"),
            "&".join(f"{_q(k)}={_q(v)}" for k, v in sorted(query.items())),
            "".join(f"{n}:{headers[n].strip()}\n" for n in names),
            ";".join(names),
            payload_sha256,
        ])
        scope = f"{day}/{cfg.region}/s3/aws4_request"
        to_sign = "\n".join([
            "AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()
        ])
        key = ("AWS4" + (cfg.secret_access_key or "")).encode()
        for item in (day, cfg.region, "s3", "aws4_request"):
            key = hmac.new(key, item.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={cfg.access_key_id}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        return headers

    def connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, timeout=self.config.request_timeout)


def _q(value: str) -> str:
    return quote(value, safe="-_.~")


def _url_query(query: dict[str, str]) -> str:
    return "&".join(f"{_q(k)}={_q(v)}" if v else _q(k) for k, v in query.items())


_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNSIGNED = "UNSIGNED-PAYLOAD"
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def _xml_find(root: ElementTree.Element, name: str) -> str | None:
    node = root.find(f"{_NS}{name}")
    if node is None:
        node = root.find(name)
    return node.text if node is not None else None


def _xml_all(root: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return root.findall(f"{_NS}{name}") + root.findall(name)


def _raise_for(status: int, body: bytes) -> None:
    code, message = "Unknown", body[:300].decode(errors="replace")
    try:
        root = ElementTree.fromstring(body)
        code = _xml_find(root, "Code") or code
        message = _xml_find(root, "Message") or message
    except ElementTree.ParseError:
        pass
    raise S3Error(status, code, message)


class _PartUpload:
    """One UploadPart request whose body is sent piece by piece as it arrives."""

    def __init__(self, signer: _Signer, key: str, upload_id: str, number: int, size: int) -> None:
        self.number, self.size, self.remaining = number, size, size
        path = signer.path(key)
        query = {"partNumber": str(number), "uploadId": upload_id}
        headers = signer.headers("PUT", path, query, _UNSIGNED, {"content-length": str(size)})
        self.conn = signer.connect()
        self.conn.putrequest("PUT", f"{quote(path, safe='/-_.~')}?{_url_query(query)}",
                             skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            self.conn.putheader(name, value)
        self.conn.endheaders()

    def send(self, data: bytes | memoryview) -> None:
        if len(data) > self.remaining:
            raise ValueError("more bytes than the part was declared with")
        self.conn.send(data)
        self.remaining -= len(data)

    def finish(self) -> str:
        if self.remaining:
            raise ValueError("part ended short of its declared size")
        try:
            response = self.conn.getresponse()
            body = response.read()
            if response.status != 200:
                _raise_for(response.status, body)
            etag = response.getheader("ETag")
            if not etag:
                raise S3Error(response.status, "NoETag", "UploadPart answered without an ETag")
            return etag
        finally:
            self.conn.close()

    def cancel(self) -> None:
        self.conn.close()


# ------------------------------------------------------------------------------------------------
# checkpoints


@dataclass
class Checkpoint:
    """The acknowledged state of one upload, as the newest checkpoint object records it."""

    upload_id: str
    multipart_id: str | None = None
    parts: list[tuple[str, int]] = field(default_factory=list)  # (ETag, size), part n at n-1
    segments: list[tuple[str, int]] = field(default_factory=list)  # (key, size), in order
    offset: int = 0

    @property
    def key(self) -> str:
        return f"blobs/{self.upload_id}"

    @property
    def pending(self) -> int:
        return sum(size for _, size in self.segments)

    def to_json(self) -> bytes:
        return json.dumps({
            "format": _MAGIC, "upload_id": self.upload_id, "multipart_id": self.multipart_id,
            "parts": self.parts, "segments": self.segments, "offset": self.offset,
        }).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Checkpoint:
        data = json.loads(raw)
        if data.get("format") != _MAGIC:
            raise ValueError("not a Moorage upload checkpoint")
        return cls(
            data["upload_id"], data["multipart_id"], [tuple(p) for p in data["parts"]],
            [tuple(s) for s in data["segments"]], data["offset"],
        )


# ------------------------------------------------------------------------------------------------
# the writer


class S3UploadWriter:
    """Appends to an upload: streams parts to S3, checkpoints what was acknowledged."""

    def __init__(self, store: S3BlobStore, cp: Checkpoint, expected: int | None) -> None:
        self.store = store
        self.cp = cp
        # Bytes this request still brings, when it said (Content-Length); None: unknown.
        self.expected_left = expected
        self.part: _PartUpload | None = None
        self.spool: IO[bytes] | None = None
        self.spooled = 0
        # Created by this request and named by no checkpoint yet (aborted on failure).
        self.created_multipart: str | None = None

    # -- the UploadWriter protocol ----------------------------------------------------------

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.part is not None:
                n = min(len(view), self.part.remaining)
                self.part.send(view[:n])
                view = view[n:]
                self._consumed(n)
                if self.part.remaining == 0:
                    self._finish_part()
                continue
            if self.expected_left is not None and self.expected_left >= len(view):
                available = self.cp.pending + self.spooled + self.expected_left
                number = len(self.cp.parts) + 1
                if available >= min_part_for(number):
                    self._open_part(self._plan_size(available, number))
                    continue
            # Not enough for a part yet, or a body of unknown length: spool it.
            self._spool_write(view)
            self._consumed(len(view))
            view = view[len(view):]
            number = len(self.cp.parts) + 1
            if self.cp.pending + self.spooled >= part_size_for(number, self.store.config.part_size):
                self._flush_pending_as_part()

    def checkpoint(self) -> str:
        """Make everything written durable in the bucket; return the handle that resumes it."""
        if self.part is not None:
            raise ValueError("checkpoint in the middle of a part")
        # A fresh name each time: a long chunk checkpoints as it streams, and the checkpoint the
        # database points at must never be overwritten by one it does not point at yet.
        token = uuid.uuid4().hex
        number = len(self.cp.parts) + 1
        if self.cp.pending + self.spooled >= min_part_for(number):
            self._flush_pending_as_part()
        elif self.spooled:
            key = f"uploads/{self.cp.upload_id}/{token}-{len(self.cp.segments)}.seg"
            self.store._put_file(key, self._spool_reader(), self.spooled)
            self.cp.segments.append((key, self.spooled))
            self._reset_spool()
        handle = f"s3:{self.cp.upload_id}:{token}"
        self.store._put_bytes(f"uploads/{self.cp.upload_id}/{token}.json", self.cp.to_json())
        # A checkpoint names the multipart upload now: a later failure must not abort it.
        self.created_multipart = None
        return handle

    def until_checkpoint(self) -> int:
        """Bytes left of the part being streamed (a declared part cannot be cut short)."""
        return self.part.remaining if self.part is not None else 0

    def commit(self, digest: str) -> str:
        """End the upload with what was written (no checkpoint); return the blob's key."""
        if self.part is not None:
            raise ValueError("commit in the middle of a part")
        key = self.store._finalize(self.cp, self._spool_reader() if self.spooled else None,
                                   self.spooled)
        self._reset_spool()
        self.created_multipart = None
        self.store._delete_prefix(f"uploads/{self.cp.upload_id}/")
        return key

    def close(self) -> None:
        if self.part is not None:
            self.part.cancel()
            self.part = None
        self._reset_spool()
        if self.created_multipart is not None:
            # The request failed before its state was acknowledged: nobody will ever see the
            # multipart upload it started.
            created, self.created_multipart = self.created_multipart, None
            self.store._abort_multipart(self.cp.key, created)

    # -- internals -------------------------------------------------------------------------

    def _consumed(self, n: int) -> None:
        self.cp.offset += n
        if self.expected_left is not None:
            self.expected_left -= n

    def _plan_size(self, available: int, number: int) -> int:
        target = part_size_for(number, self.store.config.part_size)
        # Never leave a remainder too small to be a part of its own.
        return available if available - target < min_part_for(number + 1) else target

    def _ensure_multipart(self) -> str:
        if self.cp.multipart_id is None:
            self.cp.multipart_id = self.store._create_multipart(self.cp.key)
            self.created_multipart = self.cp.multipart_id
        return self.cp.multipart_id

    def _open_part(self, size: int) -> None:
        number = len(self.cp.parts) + 1
        if number > MAX_PARTS:
            raise OSError("upload exceeds S3's 10,000 parts")
        part = _PartUpload(
            self.store.signer, self.store._full(self.cp.key), self._ensure_multipart(), number, size
        )
        try:
            # What earlier requests left over, then what this one spooled, go first.
            for chunk in self.store._read_segments(self.cp.segments):
                part.send(chunk)
            for chunk in self._spool_chunks():
                part.send(chunk)
        except BaseException:
            part.cancel()
            raise
        self.cp.segments = []
        self._reset_spool()
        self.part = part
        if part.remaining == 0:
            self._finish_part()

    def _finish_part(self) -> None:
        assert self.part is not None
        part, self.part = self.part, None
        self.cp.parts.append((part.finish(), part.size))

    def _flush_pending_as_part(self) -> None:
        self._open_part(self.cp.pending + self.spooled)

    def _spool_write(self, data: memoryview) -> None:
        if self.spool is None:
            self.spool = tempfile.TemporaryFile(dir=self.store.config.spool_dir)  # noqa: SIM115
        self.spool.write(data)
        self.spooled += len(data)

    def _spool_chunks(self) -> Iterator[bytes]:
        if not self.spooled or self.spool is None:
            return
        self.spool.seek(0)
        while chunk := self.spool.read(READ_CHUNK):
            yield chunk

    def _spool_reader(self) -> Iterator[bytes]:
        return self._spool_chunks()

    def _reset_spool(self) -> None:
        if self.spool is not None:
            self.spool.close()
        self.spool, self.spooled = None, 0


# ------------------------------------------------------------------------------------------------
# the store


class S3BlobStore:
    """Blobs in an S3-compatible bucket (see the module docstring for the layout)."""

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self.signer = _Signer(config)
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
        ok: tuple[int, ...] = (200, 204),
    ) -> tuple[int, bytes]:
        path = self.signer.path(None if key is None else self._full(key))
        payload = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
        extra = {"content-length": str(len(body))} if method in ("POST", "PUT") else None
        headers = self.signer.headers(method, path, query, payload, extra)
        url = quote(path, safe="/-_.~") + (f"?{_url_query(query)}" if query else "")
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
            _raise_for(response.status, data)
        raise AssertionError("unreachable")

    def _create_multipart(self, key: str) -> str:
        _, body = self._request("POST", key, {"uploads": ""})
        upload_id = _xml_find(ElementTree.fromstring(body), "UploadId")
        if not upload_id:
            raise S3Error(200, "NoUploadId", "CreateMultipartUpload answered without UploadId")
        return upload_id

    def _complete_multipart(self, key: str, multipart_id: str, parts: list[tuple[str, int]]):  # type: ignore[no-untyped-def]
        xml = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            for n, (etag, _) in enumerate(parts, start=1)
        )
        body = f"<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>".encode()
        _, data = self._request("POST", key, {"uploadId": multipart_id}, body)
        # S3 may answer 200 and still report an error in the body.
        if b"<Error>" in data[:200]:
            _raise_for(200, data)

    def _abort_multipart(self, key: str, multipart_id: str) -> None:
        try:
            self._request("DELETE", key, {"uploadId": multipart_id}, ok=(200, 204, 404))
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise

    def list_multipart_uploads(self) -> list[tuple[str, str, str]]:
        """(key relative to the prefix, multipart id, initiated) of unfinished uploads."""
        found: list[tuple[str, str, str]] = []
        query = {"uploads": "", "prefix": self._full("blobs/")}
        while True:
            _, body = self._request("GET", None, query)
            root = ElementTree.fromstring(body)
            for item in _xml_all(root, "Upload"):
                key = _xml_find(item, "Key") or ""
                rel = key[len(self.prefix) + 1:] if self.prefix else key
                found.append((rel, _xml_find(item, "UploadId") or "",
                              _xml_find(item, "Initiated") or ""))
            if (_xml_find(root, "IsTruncated") or "").lower() != "true":
                return found
            query = {**query, "key-marker": _xml_find(root, "NextKeyMarker") or "",
                     "upload-id-marker": _xml_find(root, "NextUploadIdMarker") or ""}

    def list_parts(self, key: str, multipart_id: str) -> list[tuple[int, str, int]]:
        """(number, ETag, size) of the parts S3 holds for an upload (paginated ListParts)."""
        found: list[tuple[int, str, int]] = []
        query = {"uploadId": multipart_id}
        while True:
            _, body = self._request("GET", key, query)
            root = ElementTree.fromstring(body)
            for item in _xml_all(root, "Part"):
                found.append((int(_xml_find(item, "PartNumber") or 0),
                              _xml_find(item, "ETag") or "", int(_xml_find(item, "Size") or 0)))
            if (_xml_find(root, "IsTruncated") or "").lower() != "true":
                return found
            query = {**query, "part-number-marker": _xml_find(root, "NextPartNumberMarker") or ""}

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
            part = _PartUpload(self.signer, self._full(cp.key), cp.multipart_id, number, tail)
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
