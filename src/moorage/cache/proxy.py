"""The pull-through cache as decorators of the registry's own services (the idea of
Distribution's `registry/proxy/`): a repository in a cache namespace is served from what is
stored when it can be, and filled from the upstream when it must be; any other repository goes
straight to the decorated service.

- a manifest by digest: stored → served, the upstream never asked; else fetched and stored.
- a manifest by tag: revalidated with a HEAD once the tag is older than `--revalidate` (no
  body moves when the digest is stored); an index is stored alone, its children are fetched
  when asked for by digest. An upstream that fails, times out or answers 429/5xx leaves a
  stored tag served, with `Warning: 110`; with nothing stored the client gets its error.
- a blob: stored → served; else streamed to every client while it is stored (flight.py).
- referrers: asked of the upstream, kept `referrers_ttl` seconds.
- tags/list: the upstream's list, kept (in the database, for every worker) for the cache's
  `--revalidate` window; the stored tags when the upstream is unavailable.
- pushes into a cache namespace are refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..events.types import Actor
from ..metadata.rows import BlobRow, ManifestRow
from ..metrics.distribution import HIT, MISS, STALE, count_cache, count_upstream_error
from ..oci.digest import Digest, parse_digest
from ..oci.errors import (
    BlobUnknown,
    Denied,
    ManifestUnknown,
    NameUnknown,
    RegistryError,
    TooManyRequests,
    Unavailable,
    Unsupported,
)
from ..oci.mediatypes import MANIFEST_TYPES
from ..registry.blobs import BlobService, BlobStream
from ..registry.referrers import ReferrerService, ReferrersPage
from ..upstream import UpstreamError
from .flight import Flight, FlightDeck

if TYPE_CHECKING:
    from ..metadata.uow import Database
    from ..registry.manifests import ManifestService, PushedManifest
    from ..registry.uploads import UploadService
    from ..registry.upstreams import UpstreamService
    from ..upstream import UpstreamClient
    from .service import CacheService, CacheTarget

log = logging.getLogger(__name__)
T = TypeVar("T")
ACCEPT = sorted(MANIFEST_TYPES)
STALE_WARNING = '110 - "stale: upstream unavailable"'
CLIENT_TTL = 30.0
SPEC_CODES = frozenset({
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
    "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS",
})


def unavailable(exc: UpstreamError) -> bool:
    """An upstream that is down, slow or overloaded (serve what is stored), not one that said
    no."""
    return exc.status == 0 or exc.status == 429 or exc.status >= 500


def client_error(exc: UpstreamError) -> RegistryError:
    """The upstream's error as the client sees it: its status and code (never NAME_UNKNOWN);
    an answer without a spec code (a HEAD has no body) gets the spec code of its status."""
    err: RegistryError
    if exc.status == 0 or (exc.status >= 500 and exc.code not in SPEC_CODES):
        err = Unavailable(f"the upstream is unavailable: {exc.message}")
        if exc.status:
            err.status = exc.status if exc.status < 600 else 502
    elif exc.status in (401, 403):
        err = Denied(f"the upstream refused the cache's credentials: {exc.message}")
    elif exc.status == 429:
        err = TooManyRequests(f"the upstream is rate-limiting the cache: {exc.message}")
    else:
        err = RegistryError(f"upstream: {exc.message}")
        err.status = exc.status if 400 <= exc.status < 600 else 502
        err.code = exc.code if exc.code in SPEC_CODES else "UNSUPPORTED"
    if exc.retry_after is not None:
        err.headers["Retry-After"] = str(max(int(exc.retry_after), 0))
    return err


class PullThrough:
    """What the decorators share: the cache lookup, the upstream clients of this process, the
    stores that cached content is written through, and the flights of cold blobs."""

    def __init__(self, caches: CacheService, upstreams: UpstreamService, database: Database,
                 store: ManifestService, uploads: UploadService, spool_dir: Path,
                 upstream_timeout: float = 30.0, referrers_ttl: float = 60.0,
                 lease_seconds: float = 30.0) -> None:
        self.caches = caches
        self.upstreams = upstreams
        self.database = database
        self.store = store  # a ManifestService without the references check: caches are sparse
        self.uploads = uploads
        self.upstream_timeout = upstream_timeout
        self.referrers_ttl = referrers_ttl
        self.deck = FlightDeck(spool_dir, self._take, self._release, self._held, lease_seconds)
        self._clients: dict[int, tuple[tuple[Any, ...], UpstreamClient, float]] = {}
        self._referrers: dict[tuple[Any, ...], tuple[float, list[dict[str, Any]]]] = {}

    # -- upstream access ----------------------------------------------------------------------

    async def client(self, target: CacheTarget) -> UpstreamClient:
        """This process's client of the target's upstream (rebuilt when its row changed)."""
        now = time.monotonic()
        held = self._clients.get(target.upstream_id)
        if held is not None and held[2] > now:
            return held[1]
        row = await asyncio.to_thread(self.upstreams.row, target.upstream_id)
        if row is None:
            raise Unavailable(f"cache {target.name!r} names an upstream that was removed")
        fingerprint = (row["url"], row["auth"], row["username"], row["secret"], row["ca_file"],
                       row["insecure"])
        if held is not None and held[0] == fingerprint:
            self._clients[target.upstream_id] = (fingerprint, held[1], now + CLIENT_TTL)
            return held[1]
        if held is not None:
            await held[1].close()
        client = self.upstreams.client(row)
        self._clients[target.upstream_id] = (fingerprint, client, now + CLIENT_TTL)
        return client

    async def call(self, target: CacheTarget,
                   fn: Callable[[UpstreamClient], Awaitable[T]]) -> T:
        """One upstream request, bounded by `upstream_timeout` (UNAVAILABLE when it is up)."""
        client = await self.client(target)
        try:
            return await asyncio.wait_for(fn(client), self.upstream_timeout)
        except TimeoutError:
            count_upstream_error(target.name, 0, "TIMEOUT")
            raise UpstreamError(0, "UNAVAILABLE",
                                f"no answer within {self.upstream_timeout:g}s") from None
        except UpstreamError as exc:
            if exc.status != 404:  # "not there" is an answer, not an upstream error
                count_upstream_error(target.name, exc.status, exc.code)
            raise

    async def close(self) -> None:
        """Close every upstream connection pool."""
        for _, client, _ in self._clients.values():
            await client.close()
        self._clients.clear()

    # -- manifests ----------------------------------------------------------------------------

    async def manifest(self, local: ManifestService, target: CacheTarget, repository: str,
                       reference: str | Digest, with_content: bool, actor: Actor | None
                       ) -> tuple[ManifestRow, str | None]:
        """A manifest of a cache repository, from storage or the upstream (see the module)."""
        upstream_repo = target.upstream_repository(repository)
        if isinstance(reference, Digest):
            try:
                found = await local.pull(repository, reference, with_content, actor)
                count_cache(target.name, HIT)
                return found
            except ManifestUnknown:
                pass
            digest = reference

            async def fetch() -> None:
                got = await self.call(target, lambda c: c.get_manifest(
                    upstream_repo, str(digest), ACCEPT))
                await self._store(target, repository, got.digest, got.media_type, got.content,
                                  [])

            try:
                await self.deck.once(f"manifest {repository}@{digest}", fetch,
                                     self._has(local, repository, digest))
            except UpstreamError as exc:
                raise self._manifest_error(exc, reference) from None
            count_cache(target.name, MISS)
            return await local.pull(repository, reference, with_content, actor)
        return await self._by_tag(local, target, repository, reference, with_content, actor)

    async def _by_tag(self, local: ManifestService, target: CacheTarget, repository: str,
                      tag: str, with_content: bool, actor: Actor | None
                      ) -> tuple[ManifestRow, str | None]:
        upstream_repo = target.upstream_repository(repository)
        cached: ManifestRow | None
        try:
            cached, _ = await local.pull(repository, tag, False)
        except ManifestUnknown:
            cached = None
        if cached is not None:
            checked = await asyncio.to_thread(self._checked, repository, tag)
            if (checked is not None and checked[0] == cached.digest
                    and time.time() - checked[1] < target.revalidate):
                count_cache(target.name, HIT)
                return await local.pull(repository, tag, with_content, actor)
        try:
            info = await self.call(target, lambda c: c.head_manifest(upstream_repo, tag, ACCEPT))
        except UpstreamError as exc:
            if cached is not None and unavailable(exc):
                log.warning("upstream unavailable: serving the cached tag",
                            extra={"repository": repository, "tag": tag, "cache": target.name,
                                   "status": exc.status, "reason": exc.message[:300]})
                row, _ = await local.pull(repository, tag, with_content, actor)
                count_cache(target.name, STALE)
                return row, STALE_WARNING
            raise self._manifest_error(exc, tag) from None
        if info is None:
            raise ManifestUnknown(f"the upstream has no manifest {upstream_repo}:{tag}",
                                  detail={"reference": tag})
        if cached is None or cached.digest != info.digest:
            try:  # stored already (under another tag, or pulled by digest): no body moves
                have, _ = await local.pull(repository, parse_digest(info.digest), True)
                content, media_type = have.content, have.media_type
            except (ManifestUnknown, RegistryError):
                content = None

            async def fetch() -> None:
                got = await self.call(target, lambda c: c.get_manifest(
                    upstream_repo, info.digest, ACCEPT))
                await self._store(target, repository, info.digest, got.media_type, got.content,
                                  [tag])

            if content is not None:
                await self._store(target, repository, info.digest, media_type, content, [tag])
            else:
                # one GET however many clients (in any worker) pull the new digest at once
                try:
                    await self.deck.once(f"manifest {repository}@{info.digest}#{tag}", fetch,
                                         self._has(local, repository, parse_digest(info.digest),
                                                   tag))
                except UpstreamError as exc:
                    raise self._manifest_error(exc, tag) from None
        count_cache(target.name, HIT if cached is not None and cached.digest == info.digest
                    else MISS)
        await asyncio.to_thread(self._check, repository, tag, info.digest)
        return await local.pull(repository, tag, with_content, actor)

    @staticmethod
    def _has(local: ManifestService, repository: str, digest: Digest,
             tag: str | None = None) -> Callable[[], Awaitable[bool]]:
        """Whether the manifest is stored (and `tag` names it), for the waiters of a fetch."""
        async def stored() -> bool:
            try:
                row, _ = await local.pull(repository, tag or digest, False)
            except (ManifestUnknown, NameUnknown):
                return False
            return row.digest == str(digest)

        return stored

    def _manifest_error(self, exc: UpstreamError, reference: str | Digest) -> RegistryError:
        if exc.status == 404:
            return ManifestUnknown(f"upstream: {exc.message}", detail={"reference": str(reference)})
        return client_error(exc)

    async def _store(self, target: CacheTarget, repository: str, digest: str, media_type: str,
                     content: bytes, tags: list[str]) -> PushedManifest:
        return await self.store.push(repository, parse_digest(digest), content, media_type, tags,
                                     Actor(f"cache:{target.name}", "system", None))

    def _checked(self, repository: str, tag: str) -> tuple[str, float] | None:
        with self.database.read() as uow:
            return uow.cache.tag_checked(repository, tag)

    def _check(self, repository: str, tag: str, digest: str) -> None:
        with self.database.write() as uow:
            uow.cache.check_tag(repository, tag, digest, time.time())

    # -- blobs --------------------------------------------------------------------------------

    async def blob(self, local: BlobService, target: CacheTarget, repository: str,
                   digest: Digest, with_body: bool, whole: bool) -> BlobRow | BlobStream:
        """A blob of a cache repository: stored, or streamed while it is fetched."""
        try:
            found = await local.find(repository, digest)
            count_cache(target.name, HIT)
            return found
        except BlobUnknown:
            pass
        count_cache(target.name, MISS)
        upstream_repo = target.upstream_repository(repository)
        if not with_body:
            try:
                info = await self.call(target, lambda c: c.head_blob(upstream_repo, str(digest)))
            except UpstreamError as exc:
                raise self._blob_error(exc, digest) from None
            if info is None:
                raise BlobUnknown(detail={"digest": str(digest)})
            return BlobStream(str(digest), info.size, None)

        if await self._reuse(local, target, repository, digest):
            return await local.find(repository, digest)

        async def stored() -> bool:
            try:
                await local.find(repository, digest)
                return True
            except BlobUnknown:
                return False

        async def fetch(flight: Flight, tee: Callable[[bytes], None]) -> None:
            await self._fetch_blob(target, repository, digest, flight, tee)

        flight = self.deck.join(f"{repository}@{digest}", fetch, stored)
        try:
            await flight.started.wait()
            if flight.error is not None and flight.written == 0:
                raise self._blob_error(flight.error, digest)
            if not flight.streaming or not whole:
                await flight.finished.wait()
                if flight.error is not None:
                    raise self._blob_error(flight.error, digest)
                flight.leave()
                return await local.find(repository, digest)
        except BaseException:
            flight.leave()
            raise
        return BlobStream(str(digest), flight.size, FlightReader(flight))

    async def _reuse(self, local: BlobService, target: CacheTarget, repository: str,
                     digest: Digest) -> bool:
        """Link a blob this registry stores already (another repository's, another cache's)
        once the upstream confirms, with a HEAD, that its repository has it: no bytes move."""
        if not await asyncio.to_thread(local.holders, digest):
            return False
        upstream_repo = target.upstream_repository(repository)
        try:
            info = await self.call(target, lambda c: c.head_blob(upstream_repo, str(digest)))
        except UpstreamError:
            return False  # the GET will say what is wrong
        if info is None:
            raise BlobUnknown(detail={"digest": str(digest)})
        return await local.mount(repository, digest, None,
                                 Actor(f"cache:{target.name}", "system", None))

    async def _fetch_blob(self, target: CacheTarget, repository: str, digest: Digest,
                          flight: Flight, tee: Callable[[bytes], None]) -> None:
        client = await self.client(target)
        upstream_repo = target.upstream_repository(repository)

        def on_size(size: int | None) -> None:
            flight.size = size
            flight.started.set()

        async def body() -> AsyncIterator[bytes]:
            async for data in client.get_blob(upstream_repo, str(digest), on_size=on_size):
                tee(data)
                yield data
            flight.started.set()  # an empty blob, or one whose size was never said

        await self.uploads.push_whole(repository, digest, body(), None,
                                      Actor(f"cache:{target.name}", "system", None))
        log.info("cold blob cached", extra={"repository": repository, "digest": str(digest),
                                            "size": flight.written, "cache": target.name})

    def _blob_error(self, exc: BaseException, digest: Digest) -> RegistryError:
        if isinstance(exc, RegistryError):
            return exc
        if isinstance(exc, UpstreamError):
            if exc.status == 404:
                return BlobUnknown(f"upstream: {exc.message}", detail={"digest": str(digest)})
            return client_error(exc)
        return Unavailable(f"fetching {digest} failed: {exc}")

    def _take(self, key: str, owner: str, until: float) -> bool:
        with self.database.write() as uow:
            return uow.cache.take_fetch(key, owner, time.time(), until)

    def _release(self, key: str, owner: str) -> None:
        with self.database.write() as uow:
            uow.cache.release_fetch(key, owner)

    def _held(self, key: str) -> bool:
        with self.database.read() as uow:
            return uow.cache.fetch_held(key, time.time())

    # -- tags -------------------------------------------------------------------------------

    async def tags(self, local: ManifestService, target: CacheTarget, repository: str,
                   last: str | None, limit: int) -> tuple[list[str], str | None]:
        """A page of the upstream's tags of the repository (kept for `--revalidate`); the
        stored ones, with the stale warning, when the upstream is unavailable (its error when
        none are)."""
        upstream_repo = target.upstream_repository(repository)
        held = await asyncio.to_thread(self._tag_list, repository)
        if held is not None and time.time() - held[1] < target.revalidate:
            found = held[0]
            count_cache(target.name, HIT)
        else:
            try:
                found = sorted(set(await self.call(target, lambda c: c.tags(upstream_repo))))
            except UpstreamError as exc:
                if exc.status == 404:
                    raise NameUnknown(f"upstream: {exc.message}",
                                      detail={"name": repository}) from None
                if not unavailable(exc):
                    raise client_error(exc) from None
                try:
                    stored = await asyncio.to_thread(local.tags, repository, last, limit)
                except NameUnknown:
                    raise client_error(exc) from None
                log.warning("upstream unavailable: serving the stored tags",
                            extra={"repository": repository, "cache": target.name,
                                   "status": exc.status, "reason": exc.message[:300]})
                count_cache(target.name, STALE)
                return stored, STALE_WARNING
            count_cache(target.name, MISS)
            await asyncio.to_thread(self._keep_tag_list, repository, found)
        if last is not None:
            found = [t for t in found if t.encode() > last.encode()]
        return found[:limit], None

    def _tag_list(self, repository: str) -> tuple[list[str], float] | None:
        with self.database.read() as uow:
            return uow.cache.tag_list(repository)

    def _keep_tag_list(self, repository: str, tags: list[str]) -> None:
        with self.database.write() as uow:
            uow.cache.keep_tag_list(repository, tags, time.time())

    # -- referrers ----------------------------------------------------------------------------

    async def referrers(self, local: ReferrerService, target: CacheTarget, repository: str,
                        subject: Digest, artifact_type: str | None, last: str | None,
                        limit: int) -> ReferrersPage:
        """The upstream's referrers of `subject` (kept briefly); the stored ones when the
        upstream is unavailable."""
        upstream_repo = target.upstream_repository(repository)
        key = (target.upstream_id, upstream_repo, str(subject), artifact_type)
        now = time.monotonic()
        held = self._referrers.get(key)
        if held is not None and held[0] > now:
            found = held[1]
        else:
            try:
                found = await self.call(target, lambda c: c.referrers(
                    upstream_repo, str(subject), artifact_type))
            except UpstreamError as exc:
                if unavailable(exc):
                    return await local.pull(repository, subject, artifact_type, last, limit)
                raise client_error(exc) from None
            if len(self._referrers) > 10_000:
                self._referrers.clear()
            self._referrers[key] = (now + self.referrers_ttl, found)
        if artifact_type is not None:
            found = [d for d in found if d.get("artifactType") == artifact_type]
        if last is not None:
            digests = [d.get("digest") for d in found]
            found = found[digests.index(last) + 1:] if last in digests else []
        more = len(found) > limit
        page = found[:limit]
        return ReferrersPage(page, page[-1]["digest"] if more and page else None)


class FlightReader:
    """A client's reading of a flight: its bytes as they arrive; leaves the flight on close."""

    def __init__(self, flight: Flight) -> None:
        self.flight = flight
        self._chunks = flight.follow()
        self._left = False

    def __aiter__(self) -> FlightReader:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await anext(self._chunks)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if not self._left:
            self._left = True
            await self._chunks.aclose()
            self.flight.leave()


# -- the decorators ---------------------------------------------------------------------------


class CachingManifests:
    """The ManifestService of a registry with cache namespaces."""

    def __init__(self, inner: ManifestService, proxy: PullThrough) -> None:
        self.inner = inner
        self.proxy = proxy
        self.max_bytes = inner.max_bytes

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def pull(self, repository: str, reference: str | Digest, with_content: bool,
                   actor: Actor | None = None) -> tuple[ManifestRow, str | None]:
        """A manifest, pulled through when the repository is in a cache namespace."""
        target = await self.proxy.caches.target(repository)
        if target is None:
            return await self.inner.pull(repository, reference, with_content, actor)
        return await self.proxy.manifest(self.inner, target, repository, reference,
                                         with_content, actor)

    async def tag_page(self, repository: str, last: str | None, limit: int,
                       inline: bool = False) -> tuple[list[str], str | None]:
        """A page of tags and the `Warning` to answer with (stale ones): the upstream's in a
        cache namespace (see PullThrough.tags), else ours (read on the loop when `inline`)."""
        target = await self.proxy.caches.target(repository)
        if target is not None:
            return await self.proxy.tags(self.inner, target, repository, last, limit)
        if inline:
            return self.inner.tags(repository, last, limit), None
        return await asyncio.to_thread(self.inner.tags, repository, last, limit), None

    async def push(self, repository: str, *args: Any, **kwargs: Any) -> PushedManifest:
        """A push, refused in a cache namespace."""
        await refuse_push(self.proxy, repository)
        return await self.inner.push(repository, *args, **kwargs)


class CachingBlobs:
    """The BlobService of a registry with cache namespaces."""

    def __init__(self, inner: BlobService, proxy: PullThrough) -> None:
        self.inner = inner
        self.proxy = proxy

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def find(self, repository: str, digest: Digest, with_body: bool = True,
                   whole: bool = True) -> BlobRow | BlobStream:
        """A blob, pulled through when the repository is in a cache namespace."""
        target = await self.proxy.caches.target(repository)
        if target is None:
            return await self.inner.find(repository, digest, with_body, whole)
        return await self.proxy.blob(self.inner, target, repository, digest, with_body, whole)


class CachingUploads:
    """The UploadService of a registry with cache namespaces: no uploads into one."""

    def __init__(self, inner: UploadService, proxy: PullThrough) -> None:
        self.inner = inner
        self.proxy = proxy

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def begin(self, repository: str, *args: Any, **kwargs: Any) -> Any:
        """Start an upload (or mount), refused in a cache namespace."""
        await refuse_push(self.proxy, repository)
        return await self.inner.begin(repository, *args, **kwargs)

    async def start(self, repository: str, *args: Any, **kwargs: Any) -> Any:
        """Open a session, refused in a cache namespace."""
        await refuse_push(self.proxy, repository)
        return await self.inner.start(repository, *args, **kwargs)


class CachingReferrers:
    """The ReferrerService of a registry with cache namespaces."""

    def __init__(self, inner: ReferrerService, proxy: PullThrough) -> None:
        self.inner = inner
        self.proxy = proxy

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def pull(self, repository: str, subject: Digest, artifact_type: str | None,
                   last: str | None, limit: int) -> ReferrersPage:
        """Referrers, asked of the upstream when the repository is in a cache namespace."""
        target = await self.proxy.caches.target(repository)
        if target is None:
            return await self.inner.pull(repository, subject, artifact_type, last, limit)
        return await self.proxy.referrers(self.inner, target, repository, subject,
                                          artifact_type, last, limit)


@dataclass(frozen=True)
class Front:
    """The decorated services the /v2/ handlers are given."""

    manifests: CachingManifests
    blobs: CachingBlobs
    uploads: CachingUploads
    referrers: CachingReferrers
    proxy: PullThrough


def decorate(proxy: PullThrough, manifests: ManifestService, blobs: BlobService,
             uploads: UploadService, referrers: ReferrerService) -> Front:
    """The registry's services wrapped by the pull-through cache."""
    return Front(CachingManifests(manifests, proxy), CachingBlobs(blobs, proxy),
                 CachingUploads(uploads, proxy), CachingReferrers(referrers, proxy), proxy)


async def refuse_push(proxy: PullThrough, repository: str) -> None:
    """UNSUPPORTED (405) for a write into a cache namespace."""
    target = await proxy.caches.target(repository)
    if target is not None:
        raise Unsupported(f"{repository} is in cache namespace {target.namespace!r}, a read-only "
                          f"mirror of upstream {target.upstream_host}: push to a hosted "
                          "namespace instead")
