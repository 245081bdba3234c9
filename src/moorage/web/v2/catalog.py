"""`/v2/_catalog`: the repositories the caller may pull from, paged."""

from __future__ import annotations

from aiohttp import web

from ...registry.manifests import ManifestService
from ..auth import AccessGuard, OpenAccess
from .base import listing_response, page_params


class Catalog:
    """Thin handler over ManifestService.catalog, filtered by the guard."""

    def __init__(self, manifests: ManifestService, guard: AccessGuard | OpenAccess,
                 page_size_max: int) -> None:
        self.manifests = manifests
        self.guard = guard
        self.page_size_max = page_size_max

    async def catalog(self, request: web.Request) -> web.StreamResponse:
        """`{"repositories"}` visible to the caller after `last`, at most `n`, with a `Link`."""
        limit, last = page_params(request, self.page_size_max)
        names: list[str] = []
        while limit and len(names) <= limit:
            batch = self.manifests.catalog(last, limit + 1)
            names += await self.guard.visible(request, batch)
            if len(batch) <= limit:
                break
            last = batch[-1]
        return listing_response(request, {}, "repositories", names[: limit + 1], limit)
