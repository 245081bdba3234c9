"""`/v2/<name>/tags/list`: a repository's tags, paged (a cache namespace's from its upstream)."""

from __future__ import annotations

from aiohttp import web

from ...registry.manifests import ManifestService
from .base import listing_response, page_params, read


class Tags:
    """Thin handler over ManifestService.tags (or the cache's `tag_page`, when decorated)."""

    def __init__(self, manifests: ManifestService, page_size_max: int,
                 inline_reads: bool = False) -> None:
        self.manifests = manifests
        self.page_size_max = page_size_max
        self.inline_reads = inline_reads

    async def tag_list(self, request: web.Request, name: str) -> web.StreamResponse:
        """`{"name", "tags"}` after `last`, at most `n`, with a `Link` to the next page."""
        limit, last = page_params(request, self.page_size_max)
        # n=0 asks for no names, yet an unknown repository is still a 404.
        want = limit + 1 if limit else 0
        tag_page = getattr(self.manifests, "tag_page", None)
        warning: str | None = None
        if tag_page is not None:
            names, warning = await tag_page(name, last, want, self.inline_reads)
        else:
            names = await read(self.inline_reads, self.manifests.tags, name, last, want)
        response = listing_response(request, {"name": name}, "tags", names, limit)
        if warning is not None:
            response.headers["Warning"] = warning  # stored tags: the upstream is unavailable
        return response
