"""`/v2/<name>/manifests/<reference>`: pull (GET, HEAD), push (PUT), delete."""

from __future__ import annotations

from aiohttp import web

from ...oci.digest import Digest, is_digest
from ...oci.errors import ManifestTooLarge, ManifestUnknown
from ...oci.reference import is_valid_tag, parse_reference
from ...registry.manifests import ManifestService
from ..bodies import read_bounded
from .base import actor_of


class Manifests:
    """Thin handlers over ManifestService."""

    def __init__(self, manifests: ManifestService, inline_reads: bool = False) -> None:
        self.manifests = manifests
        self.inline_reads = inline_reads

    async def get_manifest(self, request: web.Request, name: str,
                           reference: str) -> web.StreamResponse:
        """The manifest's exact bytes with its media type; HEAD: headers only."""
        ref = _existing_reference(reference)
        head = request.method == "HEAD"
        row, warning = await self.manifests.pull(name, ref, not head,
                                                 None if head else actor_of(request))
        headers = {"Content-Type": row.media_type, "Docker-Content-Digest": row.digest,
                   "ETag": f'"{row.digest}"'}
        if warning is not None:
            headers["Warning"] = warning
        if head:
            response = web.StreamResponse(status=200, headers=headers)
            response.content_length = row.size
            await response.prepare(request)
            await response.write_eof()
            return response
        return web.Response(body=row.content, headers=headers)

    async def put_manifest(self, request: web.Request, name: str,
                           reference: str) -> web.StreamResponse:
        """201: the manifest is stored (and tagged), with its digest, subject and tags."""
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

    async def delete_manifest(self, request: web.Request, name: str,
                              reference: str) -> web.StreamResponse:
        """202: the tag (by tag) or the manifest and its tags (by digest) are gone."""
        await self.manifests.delete(name, _existing_reference(reference), actor_of(request))
        return web.Response(status=202, headers={"Content-Length": "0"})


def _existing_reference(reference: str) -> str | Digest:
    """A reference to look up: a tag that cannot exist is simply unknown (404), not invalid."""
    if not is_digest(reference) and not is_valid_tag(reference):
        raise ManifestUnknown(detail={"reference": reference[:200]})
    return parse_reference(reference)
