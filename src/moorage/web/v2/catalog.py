"""`/v2/_catalog`: the repositories the caller may pull from, paged."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ...auth.identity import ANONYMOUS
from ...registry.catalog import CatalogService
from .base import listing_response, page_params


class Catalog:
    """Thin handler over CatalogService."""

    def __init__(self, catalog: CatalogService, page_size_max: int) -> None:
        self.catalog_service = catalog
        self.page_size_max = page_size_max

    async def catalog(self, request: web.Request) -> web.StreamResponse:
        """`{"repositories"}` visible to the caller after `last`, at most `n`, with a `Link`."""
        limit, last = page_params(request, self.page_size_max)
        names = await asyncio.to_thread(self.catalog_service.catalog_visible_to,
                                        request.get("principal") or ANONYMOUS, last, limit)
        return listing_response(request, {}, "repositories", names, limit)
