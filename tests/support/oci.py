"""OCI registry-client helpers of the tests: digests, image builders, uploads, manifests,
referrers, pulls that verify every byte, and the spec's error checks.

Every request goes through support.http's `http` (fresh connection, timeout always set).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from support.http import add_query, describe, http, next_link, resolve

# ----------------------------------------------------------------------------------------------
# constants

SPEC_CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
}

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
EMPTY_BLOB_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

ACCEPT_MANIFESTS = f"{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}, {DOCKER_LIST}"

# ----------------------------------------------------------------------------------------------
# errors


def error_codes(resp: requests.Response) -> list[str]:
    """Parse the OCI error body and check its shape; return the list of codes."""
    try:
        body = resp.json()
    except ValueError as exc:  # pragma: no cover - assertion helper
        raise AssertionError(f"error body is not JSON: {describe(resp)}") from exc
    assert isinstance(body, dict) and isinstance(body.get("errors"), list), describe(resp)
    assert body["errors"], f"empty errors list: {describe(resp)}"
    codes = []
    for err in body["errors"]:
        assert isinstance(err, dict), describe(resp)
        assert err.get("code") in SPEC_CODES, f"non-spec error code: {describe(resp)}"
        if "message" in err:
            assert isinstance(err["message"], str), describe(resp)
        codes.append(err["code"])
    return codes


def assert_error(resp: requests.Response, status: int | tuple[int, ...], *codes: str) -> str:
    """Assert status (one or a tuple of allowed ones) and, unless HEAD, a spec JSON error body
    whose first code is one of `codes` (any spec code when none is given)."""
    allowed = status if isinstance(status, tuple) else (status,)
    assert resp.status_code in allowed, f"expected {allowed}: {describe(resp)}"
    if resp.request.method == "HEAD":
        return ""
    got = error_codes(resp)
    if codes:
        assert got[0] in codes, f"expected code in {codes}: {describe(resp)}"
    return got[0]


def assert_not_5xx(resp: requests.Response) -> None:
    assert resp.status_code < 500, f"server error: {describe(resp)}"


# ----------------------------------------------------------------------------------------------
# names, digests, random data


def new_repo(prefix: str = "it") -> str:
    """A unique repository name (two components)."""
    return f"{prefix}/{uuid.uuid4().hex[:16]}"


def new_tag(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def digest_of(data: bytes, algo: str = "sha256") -> str:
    return f"{algo}:{hashlib.new(algo, data).hexdigest()}"


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


def random_digest(algo: str = "sha256") -> str:
    return digest_of(os.urandom(32), algo)


def tar_of(files: dict[str, int | bytes]) -> bytes:
    """A plain tar of `path: size` (that many zero bytes) or `path: bytes` members, in order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in files.items():
            data = body if isinstance(body, bytes) else bytes(body)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def tar_layer(compress: bool = True, files: int = 2, size: int = 300) -> bytes:
    """A small, real tar (optionally gzip) layer with random file content."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for i in range(files):
            content = os.urandom(size)
            info = tarfile.TarInfo(f"dir/file-{i}-{uuid.uuid4().hex[:6]}")
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=2).encode()


def descriptor(media_type: str, content: bytes, algo: str = "sha256", **extra: Any) -> dict:
    return {
        "mediaType": media_type,
        "digest": digest_of(content, algo),
        "size": len(content),
        **extra,
    }


def image_config(**extra: Any) -> bytes:
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "author": f"moorage-test-{uuid.uuid4().hex}",
        "rootfs": {"type": "layers", "diff_ids": []},
        **extra,
    }
    return dumps(cfg)


# ----------------------------------------------------------------------------------------------
# URLs


def v2(reg: Any, path: str) -> str:
    return f"{reg.url}/v2/{path.lstrip('/')}"


def blob_url(reg: Any, repo: str, digest: str) -> str:
    return v2(reg, f"{repo}/blobs/{digest}")


def manifest_url(reg: Any, repo: str, ref: str) -> str:
    return v2(reg, f"{repo}/manifests/{ref}")


def uploads_url(reg: Any, repo: str) -> str:
    return v2(reg, f"{repo}/blobs/uploads/")


# ----------------------------------------------------------------------------------------------
# blob uploads


def chunk_min_length(resp: requests.Response) -> int:
    value = resp.headers.get("OCI-Chunk-Min-Length")
    return int(value) if value else 0


def start_upload(reg: Any, repo: str, **params: Any) -> tuple[str, requests.Response]:
    """POST an empty upload; return (absolute Location, response). Asserts 202."""
    url = add_query(uploads_url(reg, repo), params) if params else uploads_url(reg, repo)
    r = http.post(url, headers={"Content-Length": "0"})
    assert r.status_code == 202, describe(r)
    return resolve(r), r


def parse_range(value: str | None) -> tuple[int, int]:
    assert value is not None, "missing Range header"
    m = re.fullmatch(r"(?:bytes=)?(\d+)-(\d+)", value.strip())
    assert m, f"malformed Range header {value!r}"
    return int(m.group(1)), int(m.group(2))


def patch_chunk(location: str, data: bytes, start: int | None) -> requests.Response:
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
    if start is not None:
        headers["Content-Range"] = f"{start}-{start + len(data) - 1}"
    return http.patch(location, data=data, headers=headers)


def put_final(
    location: str, digest: str, data: bytes = b"", start: int | None = None
) -> requests.Response:
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
    if data and start is not None:
        headers["Content-Range"] = f"{start}-{start + len(data) - 1}"
    return http.put(add_query(location, {"digest": digest}), data=data, headers=headers)


def assert_blob_created(resp: requests.Response, digest: str, data: bytes | None = None) -> str:
    """201 + Location (+ matching Docker-Content-Digest); GET of Location returns the bytes."""
    assert resp.status_code == 201, describe(resp)
    assert resp.headers.get("Location"), f"201 without Location: {describe(resp)}"
    assert resp.headers.get("Docker-Content-Digest") == digest, describe(resp)
    loc = resolve(resp)
    if data is not None:
        g = http.get(loc)
        assert g.status_code == 200, describe(g)
        assert g.content == data, f"GET {loc} returned different bytes"
    return loc


def upload_post_put(reg: Any, repo: str, data: bytes, algo: str = "sha256") -> requests.Response:
    loc, _ = start_upload(reg, repo)
    return put_final(loc, digest_of(data, algo), data)


def upload_post_only(reg: Any, repo: str, data: bytes, algo: str = "sha256") -> requests.Response:
    url = add_query(uploads_url(reg, repo), {"digest": digest_of(data, algo)})
    return http.post(
        url,
        data=data,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
    )


def upload_stream(reg: Any, repo: str, data: bytes, algo: str = "sha256") -> requests.Response:
    loc, _ = start_upload(reg, repo)
    r = patch_chunk(loc, data, None)
    assert r.status_code == 202, describe(r)
    return put_final(resolve(r), digest_of(data, algo))


def chunk_size_for(resp: requests.Response, minimum: int = 1024) -> int:
    return max(minimum, chunk_min_length(resp))


def upload_chunked(
    reg: Any,
    repo: str,
    data: bytes,
    algo: str = "sha256",
    chunk: int | None = None,
    put_last_chunk: bool = False,
) -> requests.Response:
    loc, post = start_upload(reg, repo)
    size = chunk or chunk_size_for(post)
    pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    last = pieces.pop() if put_last_chunk and len(pieces) > 1 else None
    offset = 0
    for piece in pieces:
        r = patch_chunk(loc, piece, offset)
        assert r.status_code == 202, describe(r)
        offset += len(piece)
        assert parse_range(r.headers.get("Range")) == (0, offset - 1), describe(r)
        loc = resolve(r)
    if last is not None:
        return put_final(loc, digest_of(data, algo), last, offset)
    return put_final(loc, digest_of(data, algo))


UPLOADERS = {
    "post-put": upload_post_put,
    "post-only": upload_post_only,
    "stream": upload_stream,
    "chunked": upload_chunked,
}


def push_blob(
    reg: Any, repo: str, data: bytes, algo: str = "sha256", method: str = "post-put"
) -> str:
    """Upload a blob with one of the upload flows; assert success; return its digest."""
    digest = digest_of(data, algo)
    r = UPLOADERS[method](reg, repo, data, algo)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest", digest) == digest, describe(r)
    return digest


def blob_exists(reg: Any, repo: str, digest: str) -> bool:
    r = http.head(blob_url(reg, repo, digest))
    assert r.status_code in (200, 404), describe(r)
    return r.status_code == 200


# ----------------------------------------------------------------------------------------------
# manifests


def put_manifest(
    reg: Any,
    repo: str,
    ref: str,
    body: bytes,
    media_type: str,
    params: dict[str, Any] | None = None,
) -> requests.Response:
    url = manifest_url(reg, repo, ref)
    if params:
        url = add_query(url, params)
    return http.put(url, data=body, headers={"Content-Type": media_type})


def push_manifest(
    reg: Any, repo: str, body: bytes, media_type: str, ref: str | None = None, algo: str = "sha256"
) -> str:
    """PUT a manifest by tag (ref) or by its digest; assert 201 and headers; return digest."""
    digest = digest_of(body, algo)
    r = put_manifest(reg, repo, ref or digest, body, media_type)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Location"), describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest, describe(r)
    return digest


def get_manifest(reg: Any, repo: str, ref: str, method: str = "GET") -> requests.Response:
    return http.request(method, manifest_url(reg, repo, ref), headers={"Accept": ACCEPT_MANIFESTS})


def assert_manifest_served(
    resp: requests.Response, body: bytes, media_type: str, digest: str, head: bool = False
) -> None:
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get("Content-Type") == media_type, describe(resp)
    assert resp.headers.get("Content-Length") == str(len(body)), describe(resp)
    assert resp.headers.get("Docker-Content-Digest") == digest, describe(resp)
    if head:
        assert resp.content == b"", describe(resp)
    else:
        assert resp.content == body, "manifest bytes were not returned verbatim"


def header_list(resp: requests.Response, name: str) -> list[str]:
    """Values of a possibly repeated, comma-separated header."""
    raw = resp.raw.headers.getlist(name) if hasattr(resp.raw, "headers") else []
    if not raw and resp.headers.get(name):
        raw = [resp.headers[name]]
    return [v.strip() for item in raw for v in item.split(",") if v.strip()]


# ----------------------------------------------------------------------------------------------
# image builders


@dataclass
class Blob:
    data: bytes
    media_type: str
    algo: str = "sha256"

    @property
    def digest(self) -> str:
        return digest_of(self.data, self.algo)

    def descriptor(self, **extra: Any) -> dict:
        return descriptor(self.media_type, self.data, self.algo, **extra)


@dataclass
class Manifest:
    body: bytes
    media_type: str
    algo: str = "sha256"
    blobs: list[Blob] = field(default_factory=list)
    children: list[Manifest] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return digest_of(self.body, self.algo)

    @property
    def size(self) -> int:
        return len(self.body)

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    def descriptor(self, **extra: Any) -> dict:
        return descriptor(self.media_type, self.body, self.algo, **extra)


def _add_optional(
    doc: dict[str, Any],
    subject: Manifest | dict | None,
    annotations: dict[str, str] | None,
    extra: dict[str, Any] | None,
) -> None:
    """The fields images and indexes share: subject, annotations, anything extra."""
    if subject is not None:
        doc["subject"] = subject.descriptor() if isinstance(subject, Manifest) else subject
    if annotations:
        doc["annotations"] = annotations
    if extra:
        doc.update(extra)


def make_image(
    layers: int = 1,
    algo: str = "sha256",
    compress: bool = True,
    config: Blob | None = None,
    layer_blobs: list[Blob] | None = None,
    artifact_type: str | None = None,
    subject: Manifest | dict | None = None,
    annotations: dict[str, str] | None = None,
    media_type_field: bool = True,
    extra: dict[str, Any] | None = None,
    docker: bool = False,
) -> Manifest:
    """Build an OCI (or Docker schema2) image manifest plus its blobs (not pushed)."""
    if docker:
        config = config or Blob(image_config(), DOCKER_CONFIG, algo)
        layer_media = DOCKER_LAYER
        mt = DOCKER_MANIFEST
    else:
        config = config or Blob(image_config(), OCI_CONFIG, algo)
        layer_media = OCI_LAYER_GZIP if compress else OCI_LAYER_TAR
        mt = OCI_MANIFEST
    if layer_blobs is None:
        layer_blobs = [Blob(tar_layer(compress), layer_media, algo) for _ in range(layers)]
    doc: dict[str, Any] = {"schemaVersion": 2}
    if media_type_field:
        doc["mediaType"] = mt
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = config.descriptor()
    doc["layers"] = [b.descriptor() for b in layer_blobs]
    _add_optional(doc, subject, annotations, extra)
    return Manifest(dumps(doc), mt, algo, [config, *layer_blobs])


def make_artifact(
    artifact_type: str | None = "application/vnd.moorage.test.artifact",
    subject: Manifest | dict | None = None,
    annotations: dict[str, str] | None = None,
    layers: list[Blob] | None = None,
    config: Blob | None = None,
    algo: str = "sha256",
) -> Manifest:
    """An artifact manifest: empty-JSON config unless given, custom layers (may be empty)."""
    config = config or Blob(EMPTY_JSON, OCI_EMPTY, algo)
    if layers is None:
        layers = [Blob(os.urandom(64), "application/vnd.moorage.test.payload", algo)]
    return make_image(
        config=config,
        layer_blobs=layers,
        artifact_type=artifact_type,
        subject=subject,
        annotations=annotations,
        algo=algo,
    )


def make_index(
    children: list[Manifest],
    algo: str = "sha256",
    artifact_type: str | None = None,
    subject: Manifest | dict | None = None,
    annotations: dict[str, str] | None = None,
    platforms: bool = True,
    docker: bool = False,
    extra: dict[str, Any] | None = None,
) -> Manifest:
    mt = DOCKER_LIST if docker else OCI_INDEX
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt}
    if artifact_type:
        doc["artifactType"] = artifact_type
    archs = ["amd64", "arm64", "ppc64le", "s390x", "riscv64", "386"]
    entries = []
    for i, child in enumerate(children):
        d = child.descriptor()
        if platforms and child.media_type in (OCI_MANIFEST, DOCKER_MANIFEST):
            d["platform"] = {"architecture": archs[i % len(archs)], "os": "linux"}
        entries.append(d)
    doc["manifests"] = entries
    _add_optional(doc, subject, annotations, extra)
    return Manifest(dumps(doc), mt, algo, [], list(children))


def push_tree(
    reg: Any, repo: str, m: Manifest, tag: str | None = None, method: str = "post-put"
) -> str:
    """Push all blobs and children (child first, by digest), then the manifest itself."""
    for child in m.children:
        push_tree(reg, repo, child, method=method)
    for b in m.blobs:
        push_blob(reg, repo, b.data, b.algo, method)
    digest = push_manifest(reg, repo, m.body, m.media_type, algo=m.algo)
    if tag:
        push_manifest(reg, repo, m.body, m.media_type, ref=tag, algo=m.algo)
    return digest


def list_tags(reg: Any, repo: str, **params: Any) -> requests.Response:
    url = v2(reg, f"{repo}/tags/list")
    return http.get(add_query(url, params) if params else url)


def referrers(reg: Any, repo: str, digest: str, **params: Any) -> requests.Response:
    url = v2(reg, f"{repo}/referrers/{digest}")
    return http.get(add_query(url, params) if params else url)


def follow_pages(first: requests.Response, key: str, limit: int = 200) -> list:
    """Follow Link rel=next pages collecting body[key]; asserts each page is 200."""
    items: list = []
    resp = first
    for _ in range(limit):
        assert resp.status_code == 200, describe(resp)
        items.extend(resp.json()[key] or [])
        nxt = next_link(resp)
        if not nxt:
            return items
        resp = http.get(nxt)
    raise AssertionError("pagination did not terminate")


# ----------------------------------------------------------------------------------------------
# referrers


def expected_referrer(m: Manifest) -> dict:
    """The descriptor the referrers API must list for manifest/index `m`."""
    doc = m.json
    d: dict[str, Any] = {"mediaType": m.media_type, "digest": m.digest, "size": m.size}
    if doc.get("artifactType"):
        d["artifactType"] = doc["artifactType"]
    elif m.media_type in (OCI_MANIFEST, DOCKER_MANIFEST) and "config" in doc:
        d["artifactType"] = doc["config"]["mediaType"]
    if doc.get("annotations"):
        d["annotations"] = doc["annotations"]
    return d


def assert_referrers_index(resp: requests.Response) -> list[dict]:
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get("Content-Type") == OCI_INDEX, describe(resp)
    body = resp.json()
    assert body.get("schemaVersion") == 2, describe(resp)
    assert body.get("mediaType") == OCI_INDEX, describe(resp)
    assert isinstance(body.get("manifests"), list), describe(resp)
    return body["manifests"]


def assert_referrer_listed(listed: list[dict], m: Manifest) -> None:
    exp = expected_referrer(m)
    found = [d for d in listed if d.get("digest") == m.digest]
    assert len(found) == 1, f"{m.digest} listed {len(found)} times in {listed}"
    got = found[0]
    assert got.get("mediaType") == exp["mediaType"], got
    assert got.get("size") == exp["size"], got
    assert got.get("artifactType") == exp.get("artifactType"), (got, exp)
    for k, v in (exp.get("annotations") or {}).items():
        assert (got.get("annotations") or {}).get(k) == v, (got, exp)


def all_referrers(reg: Any, repo: str, digest: str, **params: Any) -> list[dict]:
    """Every referrer descriptor, following Link pages."""
    first = referrers(reg, repo, digest, **params)
    assert_referrers_index(first)
    return follow_pages(first, "manifests")


# ----------------------------------------------------------------------------------------------
# pulls


def pull_and_verify(reg: Any, repo: str, ref: str) -> None:
    """GET a manifest and every blob and child it references; assert every digest."""
    r = http.get(manifest_url(reg, repo, ref), headers={"Accept": ACCEPT_MANIFESTS})
    assert r.status_code == 200, describe(r)
    digest = r.headers["Docker-Content-Digest"]
    assert digest_of(r.content) == digest
    doc = json.loads(r.content)
    for child in doc.get("manifests", []):
        pull_and_verify(reg, repo, child["digest"])
    for d in ([doc["config"]] if "config" in doc else []) + doc.get("layers", []):
        b = http.get(blob_url(reg, repo, d["digest"]))
        assert b.status_code == 200, f"{repo}@{d['digest']}: {describe(b)}"
        assert digest_of(b.content) == d["digest"], f"{repo}@{d['digest']} corrupt"


def push_image(reg: Any, repo: str, tag: str, layer_bytes: int = 64 * 1024
               ) -> tuple[str, dict[str, bytes]]:
    """Push a config, one random layer and a manifest tagged `tag`; return the manifest's
    digest and every pushed blob (digest -> bytes), the manifest included."""
    config = image_config()
    layer = random_bytes(layer_bytes)
    for blob in (config, layer):
        push_blob(reg, repo, blob)
    manifest = dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config), "layers": [descriptor(OCI_LAYER_GZIP, layer)],
    })
    digest = push_manifest(reg, repo, manifest, OCI_MANIFEST, ref=tag)
    return digest, {digest_of(config): config, digest_of(layer): layer, digest: manifest}
