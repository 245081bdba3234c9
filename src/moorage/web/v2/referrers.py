"""`/v2/<name>/referrers/<digest>`: the manifests whose subject is `<digest>`, as an index."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from aiohttp import web

from ...oci import mediatypes as mt
from ...oci.digest import parse_digest
from ...registry.referrers import ReferrerService
from .base import page_params

DEFAULT_PAGE = 1000


class Referrers:
    """Thin handler over ReferrerService."""

    def __init__(self, referrers: ReferrerService, page_size_max: int) -> None:
        self.referrers = referrers
        self.page_size_max = page_size_max

    async def list_referrers(self, request: web.Request, name: str,
                             digest: str) -> web.StreamResponse:
        """An image index of the referrers (optionally of one `artifactType`), paged by `Link`."""
        subject = parse_digest(digest)
        limit, last = page_params(request, self.page_size_max, default=DEFAULT_PAGE)
        if last is not None:
            parse_digest(last)
        artifact_type = request.query.get("artifactType")
        page = await self.referrers.pull(name, subject, artifact_type, last, max(limit, 1))
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
