"""The OCI Distribution API under /v2/: parse the request, call a service, render the answer."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote, urlencode

from aiohttp import web

from ..auth.scopes import DELETE, PULL, PUSH
from ..events.audit import AuditLog
from ..events.types import Actor, WriteRefused
from ..oci import mediatypes as mt
from ..oci.digest import DEFAULT_ALGORITHM, Digest, is_digest, parse_digest
from ..oci.errors import (
    AccessDenied,
    DigestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
    RangeNotSatisfiable,
    RegistryError,
    Unauthorized,
    Unavailable,
    Unsupported,
)
from ..oci.reference import is_valid_tag, parse_reference, validate_name
from ..registry.blobs import BlobService
from ..registry.manifests import ManifestService
from ..registry.referrers import ReferrerService
from ..registry.uploads import ChunkRange, UploadService, UploadStatus
from .auth import AccessGuard, OpenAccess
from .bodies import read_bounded
from .params import parse_uint
from .ranges import parse_range

log = logging.getLogger("moorage.http")

Handler = Callable[..., Awaitable[web.StreamResponse]]
# ASCII digits only (RFC 9110): `\d` would also match "０" and other Unicode digits.
_CONTENT_RANGE_RE = re.compile(r"(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?")
API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


class DistributionAPI:
    """Routes /v2/ requests to the registry services."""

    def __init__(
        self,
        uploads: UploadService,
        blobs: BlobService,
        manifests: ManifestService,
        referrers: ReferrerService,
        chunk_min_length: int,
        page_size_max: int,
        audit: AuditLog,
        guard: AccessGuard | OpenAccess,
    ) -> None:
        self.audit = audit
        self.guard = guard
        self.uploads = uploads
        self.blobs = blobs
        self.manifests = manifests
        self.referrers = referrers
        self.chunk_min_length = chunk_min_length
        self.page_size_max = page_size_max
        # Order matters: upload routes before blob routes. Each method names the access it needs.
        self.routes: list[tuple[re.Pattern[str], dict[str, tuple[Handler, str | None]]]] = [
            (re.compile(r"^/v2/?$"), {"GET": (self.ping, None), "HEAD": (self.ping, None)}),
            (re.compile(r"^/v2/_catalog$"), {"GET": (self.catalog, "catalog")}),
            (re.compile(r"^/v2/(?P<name>.+)/tags/list$"), {"GET": (self.tag_list, PULL)}),
            (
                re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$"),
                {
                    "GET": (self.get_manifest, PULL),
                    "HEAD": (self.get_manifest, PULL),
                    "PUT": (self.put_manifest, PUSH),
                    "DELETE": (self.delete_manifest, DELETE),
                },
            ),
            (
                re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/?$"),
                {"POST": (self.start_upload, PUSH)},
            ),
            (
                re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<upload>[^/]+)$"),
                {
                    "GET": (self.upload_status, PUSH),
                    "PATCH": (self.patch_upload, PUSH),
                    "PUT": (self.finish_upload, PUSH),
                    "DELETE": (self.cancel_upload, PUSH),
                },
            ),
            (
                re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$"),
                {
                    "GET": (self.get_blob, PULL),
                    "HEAD": (self.get_blob, PULL),
                    "DELETE": (self.delete_blob, DELETE),
                },
            ),
            (
                re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$"),
                {"GET": (self.list_referrers, PULL)},
            ),
        ]

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Find the endpoint for a /v2/ path, check access, and call it (the services append
        the events of what changed; nothing is inferred here)."""
        path = request.path
        for pattern, methods in self.routes:
            m = pattern.fullmatch(path)
            if m is None:
                continue
            entry = methods.get(request.method)
            if entry is None:
                raise Unsupported(
                    f"{request.method} is not allowed here",
                    headers={"Allow": ", ".join(methods)},
                )
            handler, action = entry
            params = m.groupdict()
            name = params.get("name")
            if name is not None:
                validate_name(name)
            await self.guard.check(request, name, action)
            try:
                return await handler(request, **params)
            except RegistryError as exc:
                if name is not None:
                    await self._record_refusal(request, name, params, exc)
                raise
        raise web.HTTPNotFound()

    async def _record_refusal(
        self, request: web.Request, name: str, params: dict[str, str], exc: RegistryError
    ) -> None:
        # A refused write changes nothing, so no service emits its event; the audit log still
        # records the attempt. Denials are the guard's to record (once).
        if isinstance(exc, Unauthorized | AccessDenied):
            return
        action, reference = _write_action(request, params)
        if action is None:
            return
        event = WriteRefused(
            actor=actor_of(request), repository=name, action=action, reference=reference,
            detail={"status": exc.status, "code": exc.code, "reason": exc.message[:300]},
        )
        try:
            await self.audit.outbox.emit_async(event)
        except Exception:  # the client's answer is the refusal, not a failure to record it
            log.exception("could not record a refused write", extra={"repository": name})

    # -- base -------------------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({}, headers=API_VERSION_HEADER)

    # -- blobs ------------------------------------------------------------------------------

    async def get_blob(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        parsed = parse_digest(digest)
        row = self.blobs.locate(name, parsed)
        headers = {
            "Docker-Content-Digest": row.digest,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "ETag": f'"{row.digest}"',
            "Cache-Control": "max-age=31536000, immutable",
        }
        byte_range = parse_range(request.headers.get("Range"), row.size)
        if request.method == "GET" and (url := self.blobs.redirect_url(row)) is not None:
            # The object store serves the bytes (and the Range, which the client sends again) but
            # cannot add Docker-Content-Digest, so the 307 carries it. Content-Length stays the
            # 307's own (empty) body: HTTP framing, not the blob's size.
            return web.Response(
                status=307,
                headers={"Location": url, "Docker-Content-Digest": row.digest,
                         "Content-Type": "application/octet-stream",
                         "Content-Length": "0", "Cache-Control": "no-store"},
            )
        status, offset, count = 200, 0, row.size
        if byte_range is not None:
            status, offset, count = 206, byte_range[0], byte_range[1] - byte_range[0] + 1
            headers["Content-Range"] = f"bytes {byte_range[0]}-{byte_range[1]}/{row.size}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = count
        await response.prepare(request)
        if request.method == "GET" and count > 0:
            await self.blobs.send(row, offset, count, request.transport, response.write)
        await response.write_eof()
        return response

    async def delete_blob(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        await self.blobs.delete(name, parse_digest(digest), actor_of(request))
        return web.Response(status=202, headers={"Content-Length": "0"})

    # -- uploads ----------------------------------------------------------------------------

    async def start_upload(self, request: web.Request, name: str) -> web.StreamResponse:
        query = request.query
        mount = query.get("mount")
        if mount is not None:
            digest = parse_digest(mount)
            source = query.get("from")
            if source is not None:
                validate_name(source)
            if source is not None:
                # A token without pull on `from` is challenged for a wider one (401), as in
                # Distribution; a caller who may not read it gets an upload session.
                sources = [source] if await self.guard.may_lend(request, name, source) else []
            else:
                # Without `from`, only repositories the caller may read can lend the blob.
                sources = await self.guard.lenders(request, self.blobs.holders(digest))
            if await self.blobs.mount(name, digest, sources, actor_of(request)):
                return _blob_created(name, digest)
        if "digest" in query:
            digest = parse_digest(query["digest"])
            await self.uploads.push_whole(name, digest, _body(request), _length(request),
                                          actor_of(request))
            return _blob_created(name, digest)
        algorithm = query.get("digest-algorithm", DEFAULT_ALGORITHM)
        status = await self.uploads.start(name, algorithm)
        return self._upload_response(202, name, status)

    async def upload_status(self, request: web.Request, name: str, upload: str) -> web.StreamResponse:
        status = await self.uploads.status(name, upload)
        return self._upload_response(204, name, status)

    async def patch_upload(self, request: web.Request, name: str, upload: str) -> web.StreamResponse:
        chunk = _content_range(request)
        try:
            status = await self.uploads.append(name, upload, _body(request), chunk, _length(request))
        except (RangeNotSatisfiable, Unavailable) as exc:
            exc.headers.update(self._upload_headers(name, upload))
            raise
        return self._upload_response(202, name, status)

    async def finish_upload(self, request: web.Request, name: str, upload: str) -> web.StreamResponse:
        if "digest" not in request.query:
            raise DigestInvalid("PUT must carry ?digest=")
        digest = parse_digest(request.query["digest"])
        chunk = _content_range(request)
        try:
            await self.uploads.finish(name, upload, digest, _body(request), chunk,
                                      _length(request), actor_of(request))
        except RangeNotSatisfiable as exc:
            exc.headers.update(self._upload_headers(name, upload))
            raise
        return _blob_created(name, digest)

    async def cancel_upload(self, request: web.Request, name: str, upload: str) -> web.StreamResponse:
        await self.uploads.cancel(name, upload)
        return web.Response(status=204)

    def _upload_headers(self, name: str, upload_id: str) -> dict[str, str]:
        return {
            "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
            "Docker-Upload-UUID": upload_id,
            "OCI-Chunk-Min-Length": str(self.chunk_min_length),
        }

    def _upload_response(self, status: int, name: str, upload: UploadStatus) -> web.Response:
        headers = self._upload_headers(name, upload.id)
        headers["Range"] = f"0-{max(upload.offset - 1, 0)}"
        headers["Content-Length"] = "0"
        return web.Response(status=status, headers=headers)

    # -- manifests --------------------------------------------------------------------------

    async def get_manifest(self, request: web.Request, name: str, reference: str) -> web.StreamResponse:
        ref = _existing_reference(reference)
        head = request.method == "HEAD"
        row = self.manifests.get(name, ref, with_content=not head,
                                 actor=None if head else actor_of(request))
        headers = {"Content-Type": row.media_type, "Docker-Content-Digest": row.digest,
                   "ETag": f'"{row.digest}"'}
        if head:
            response = web.StreamResponse(status=200, headers=headers)
            response.content_length = row.size
            await response.prepare(request)
            await response.write_eof()
            return response
        return web.Response(body=row.content, headers=headers)

    async def put_manifest(self, request: web.Request, name: str, reference: str) -> web.StreamResponse:
        ref = parse_reference(reference)
        content = await read_bounded(request, self.manifests.max_bytes, ManifestTooLarge)
        pushed = await self.manifests.push(
            name, ref, content, request.headers.get("Content-Type"),
            request.query.getall("tag", []), actor_of(request),
        )
        headers = {
            "Location": f"/v2/{name}/manifests/{pushed.digest}",
            "Docker-Content-Digest": str(pushed.digest),
            "Content-Length": "0",
        }
        if pushed.subject:
            headers["OCI-Subject"] = pushed.subject
        if isinstance(ref, Digest) and pushed.tags:
            headers["OCI-Tag"] = ", ".join(pushed.tags)
        return web.Response(status=201, headers=headers)

    async def delete_manifest(self, request: web.Request, name: str, reference: str) -> web.StreamResponse:
        await self.manifests.delete(name, _existing_reference(reference), actor_of(request))
        return web.Response(status=202, headers={"Content-Length": "0"})

    # -- listing ----------------------------------------------------------------------------

    async def tag_list(self, request: web.Request, name: str) -> web.StreamResponse:
        limit, last = self._page(request)
        names = self.manifests.tags(name, last, limit + 1) if limit else []
        if not limit:
            self.manifests.tags(name, None, 1)  # still 404 for an unknown repository
        return self._listing(request, {"name": name}, "tags", names, limit)

    async def catalog(self, request: web.Request) -> web.StreamResponse:
        limit, last = self._page(request)
        names: list[str] = []
        while limit and len(names) <= limit:
            batch = self.manifests.catalog(last, limit + 1)
            names += await self.guard.visible(request, batch)
            if len(batch) <= limit:
                break
            last = batch[-1]
        return self._listing(request, {}, "repositories", names[: limit + 1], limit)

    async def list_referrers(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        subject = parse_digest(digest)
        limit, last = self._page(request, default=1000)
        if last is not None:
            parse_digest(last)
        artifact_type = request.query.get("artifactType")
        page = self.referrers.list(name, subject, artifact_type, last, max(limit, 1))
        headers = {"Content-Type": mt.OCI_INDEX}
        if artifact_type is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        if page.next_last is not None:
            params = {"n": str(limit), "last": page.next_last}
            if artifact_type is not None:
                params["artifactType"] = artifact_type
            headers["Link"] = f'<{request.path}?{urlencode(params)}>; rel="next"'
        body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": page.descriptors}
        return web.Response(body=json.dumps(body).encode(), headers=headers)

    def _page(self, request: web.Request, default: int | None = None) -> tuple[int, str | None]:
        raw = request.query.get("n")
        if raw is None:
            limit = default or self.page_size_max
        else:
            n = parse_uint(raw)
            if n is None:
                raise RegistryError(f"invalid page size n={raw[:20]!r}")
            limit = min(n, self.page_size_max)
        return limit, request.query.get("last")

    def _listing(
        self, request: web.Request, body: dict, key: str, names: list[str], limit: int
    ) -> web.Response:
        headers: dict[str, str] = {}
        if len(names) > limit:
            names = names[:limit]
            headers["Link"] = (
                f'<{request.path}?n={limit}&last={quote(names[-1], safe="")}>; rel="next"'
            )
        body[key] = names
        return web.json_response(body, headers=headers)


def _write_action(request: web.Request, params: dict[str, str]) -> tuple[str | None, str | None]:
    """The audit action and reference of a /v2/ write (None for reads and chunk appends)."""
    method, query = request.method, request.query
    if "reference" in params:
        reference = params["reference"]
        if method == "PUT":
            return "manifest.push", reference
        if method == "DELETE":
            return ("manifest.delete" if is_digest(reference) else "tag.delete"), reference
    elif "upload" in params:
        if method == "PUT":
            return "blob.push", query.get("digest")
    elif "digest" in params and "/referrers/" not in request.path:
        if method == "DELETE":
            return "blob.delete", params["digest"]
    elif method == "POST" and "digest" in query:
        return "blob.push", query["digest"]
    return None, None


def actor_of(request: web.Request) -> Actor:
    """Who is asking (the authenticated principal, if any) and from which address."""
    principal = request.get("principal")
    if principal is None:
        return Actor(None, None, request.remote)
    return Actor(principal.name, principal.kind, request.remote)


def _existing_reference(reference: str) -> str | Digest:
    """A reference to look up: a tag that cannot exist is simply unknown (404), not invalid."""
    if not is_digest(reference) and not is_valid_tag(reference):
        raise ManifestUnknown(detail={"reference": reference[:200]})
    return parse_reference(reference)


def _body(request: web.Request) -> AsyncIterator[bytes]:
    return request.content.iter_any()


def _length(request: web.Request) -> int | None:
    if request.content_length is not None:
        return request.content_length
    return None if request.can_read_body else 0


def _content_range(request: web.Request) -> ChunkRange | None:
    raw = request.headers.get("Content-Range")
    if raw is None:
        return None
    m = _CONTENT_RANGE_RE.fullmatch(raw.strip())
    start = parse_uint(m.group(1)) if m else None
    end = parse_uint(m.group(2)) if m else None
    if start is None or end is None or end < start:
        raise RangeNotSatisfiable(f"invalid Content-Range {raw[:100]!r}")
    return ChunkRange(start, end)


def _blob_created(name: str, digest: Digest) -> web.Response:
    return web.Response(
        status=201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": str(digest),
            "Content-Length": "0",
        },
    )
