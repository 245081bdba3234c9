"""HTTP side of rate limits: which requests count as pulls, pushes and logins, and the 429."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..auth.authorizer import Action
from ..events.types import Actor
from ..oci.errors import TooManyRequests
from ..policy.ratelimit import retry_header
from ..registry.rate_limiter import Bucket, RateLimiter
from .metrics import rate_limited
from .routes import Route


def rate_kind(route: Route) -> str | None:
    """What a /v2/ route costs from the route table's action: pull (reads of manifests, blobs,
    tags, referrers), push (a manifest PUT or the start of an upload), or nothing. The requests
    of an upload already started are free, so an upload in progress is never cut; so are the
    chunk batches of a delta push or pull (its recipe commit and read are charged)."""
    if "/moorage/chunks" in route.path:
        return None
    if route.action == Action.PULL:
        return "pull"
    if route.action == Action.PUSH and "{upload}" not in route.path:
        return "push"
    return None


class RateGate:
    """Charges requests to the rate limiter and answers 429 TOOMANYREQUESTS when one is over."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def check(self, request: web.Request, kind: str, principal: Any,
                    repository: str | None) -> None:
        """Charge a pull or push; raise TooManyRequests (with Retry-After) when over budget."""
        if self.limiter.stale:
            await asyncio.to_thread(self.limiter.load)
        buckets = self.limiter.buckets(kind, principal, repository, request.remote)
        if buckets:
            actor = (Actor(None, "anonymous", request.remote) if principal is None
                     else Actor(principal.name, principal.kind, request.remote))
            await self._charge(kind, buckets, actor, repository)

    async def login(self, request: web.Request, claimed: str | None) -> None:
        """Charge a login attempt of `claimed` (None: none named) from the request's address."""
        if self.limiter.stale:
            await asyncio.to_thread(self.limiter.load)
        buckets = self.limiter.login_buckets(claimed, request.remote)
        if buckets:
            await self._charge("login", buckets, Actor(claimed, None, request.remote), None)

    async def _charge(self, kind: str, buckets: list[Bucket], actor: Actor,
                      repository: str | None) -> None:
        refusal = await asyncio.to_thread(self.limiter.take, kind, buckets, actor, repository)
        if refusal is not None:
            rate_limited(kind)
            raise TooManyRequests(refusal.message,
                                  headers={"Retry-After": retry_header(refusal.retry_after)})
