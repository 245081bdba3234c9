"""SigV4 signing for the S3 calls obstore does not expose, S3 error replies, streamed UploadPart.

obstore keeps its multipart uploads inside one process; an upload that any node can continue
needs CreateMultipartUpload, UploadPart, Complete, Abort and the List calls signed by hand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

if TYPE_CHECKING:
    from .store import S3Config


class S3Error(OSError):
    """An S3 request failed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"S3 {status} {code}: {message}")
        self.status, self.code = status, code


class Signer:
    """Signs requests to the configured endpoint with AWS Signature Version 4."""

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


def url_query(query: dict[str, str]) -> str:
    return "&".join(f"{_q(k)}={_q(v)}" if v else _q(k) for k, v in query.items())


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def xml_find(root: ElementTree.Element, name: str) -> str | None:
    node = root.find(f"{_NS}{name}")
    if node is None:
        node = root.find(name)
    return node.text if node is not None else None


def xml_all(root: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return root.findall(f"{_NS}{name}") + root.findall(name)


def raise_for(status: int, body: bytes) -> None:
    code, message = "Unknown", body[:300].decode(errors="replace")
    try:
        root = ElementTree.fromstring(body)
        code = xml_find(root, "Code") or code
        message = xml_find(root, "Message") or message
    except ElementTree.ParseError:
        pass
    raise S3Error(status, code, message)


class PartUpload:
    """One UploadPart request whose body is sent piece by piece as it arrives."""

    def __init__(self, signer: Signer, key: str, upload_id: str, number: int, size: int) -> None:
        self.number, self.size, self.remaining = number, size, size
        path = signer.path(key)
        query = {"partNumber": str(number), "uploadId": upload_id}
        headers = signer.headers("PUT", path, query, UNSIGNED, {"content-length": str(size)})
        self.conn = signer.connect()
        self.conn.putrequest("PUT", f"{quote(path, safe='/-_.~')}?{url_query(query)}",
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
                raise_for(response.status, body)
            etag = response.getheader("ETag")
            if not etag:
                raise S3Error(response.status, "NoETag", "UploadPart answered without an ETag")
            return etag
        finally:
            self.conn.close()

    def cancel(self) -> None:
        self.conn.close()
