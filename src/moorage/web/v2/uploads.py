"""`/v2/<name>/blobs/uploads/...`: start (or mount, or push whole), append, finish, status,
cancel."""

from __future__ import annotations

import re

from aiohttp import web

from ...oci.digest import DEFAULT_ALGORITHM, parse_digest
from ...oci.errors import DigestInvalid, RangeNotSatisfiable, Unavailable
from ...oci.reference import validate_name
from ...registry.uploads import ChunkRange, UploadService, UploadStatus
from ..auth import AccessGuard, OpenAccess
from ..params import parse_uint
from .base import actor_of, blob_created, request_body, request_length

# ASCII digits only (RFC 9110): `\d` would also match "０" and other Unicode digits.
_CONTENT_RANGE_RE = re.compile(r"(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?")


class Uploads:
    """Thin handlers over UploadService."""

    def __init__(self, uploads: UploadService, guard: AccessGuard | OpenAccess,
                 chunk_min_length: int) -> None:
        self.uploads = uploads
        self.guard = guard
        self.chunk_min_length = chunk_min_length

    async def start_upload(self, request: web.Request, name: str) -> web.StreamResponse:
        """POST: mount (`?mount=`), push whole (`?digest=`), or open a session (202)."""
        query = request.query
        mount = parse_digest(query["mount"]) if "mount" in query else None
        source = query.get("from") if mount is not None else None
        if source is not None:
            validate_name(source)

        async def lenders(candidates: list[str]) -> list[str]:
            if source is not None:
                # A token without pull on `from` is challenged for a wider one (401), as in
                # Distribution; a caller who may not read it gets an upload session.
                return candidates if await self.guard.may_lend(request, name, source) else []
            # Without `from`, only repositories the caller may read can lend the blob.
            return await self.guard.lenders(request, candidates)

        begun = await self.uploads.begin(
            name, request_body(request), request_length(request), mount=mount,
            mount_from=source, lenders=lenders,
            digest=parse_digest(query["digest"]) if "digest" in query else None,
            algorithm=query.get("digest-algorithm", DEFAULT_ALGORITHM), actor=actor_of(request),
        )
        if begun.blob is not None:
            return blob_created(name, begun.blob)
        assert begun.session is not None
        return self._upload_response(202, name, begun.session)

    async def upload_status(self, request: web.Request, name: str,
                            upload: str) -> web.StreamResponse:
        """204 with the session's `Range`."""
        status = await self.uploads.status(name, upload)
        return self._upload_response(204, name, status)

    async def patch_upload(self, request: web.Request, name: str,
                           upload: str) -> web.StreamResponse:
        """202: the chunk (or the streamed body) is appended."""
        chunk = _content_range(request)
        try:
            status = await self.uploads.append(name, upload, request_body(request), chunk,
                                               request_length(request))
        except (RangeNotSatisfiable, Unavailable) as exc:
            exc.headers.update(self._upload_headers(name, upload))
            raise
        return self._upload_response(202, name, status)

    async def finish_upload(self, request: web.Request, name: str,
                            upload: str) -> web.StreamResponse:
        """201: the session, with an optional last chunk, becomes the blob `?digest=`."""
        if "digest" not in request.query:
            raise DigestInvalid("PUT must carry ?digest=")
        digest = parse_digest(request.query["digest"])
        chunk = _content_range(request)
        try:
            await self.uploads.finish(name, upload, digest, request_body(request), chunk,
                                      request_length(request), actor_of(request))
        except RangeNotSatisfiable as exc:
            exc.headers.update(self._upload_headers(name, upload))
            raise
        return blob_created(name, digest)

    async def cancel_upload(self, request: web.Request, name: str,
                            upload: str) -> web.StreamResponse:
        """204: the session is gone."""
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
