"""An OCI Distribution client for one upstream registry: token flow, verified pulls that resume
with Range, resumable chunked pushes, mounts, tags and referrers.

Authentication is in auth.py, the chunked push and range placement in transfer.py, bounded reads
and error bodies in wire.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, Self

import aiohttp
from yarl import URL

from moorage.oci.digest import Hasher, digest_bytes, new_hasher, parse_digest
from moorage.oci.errors import RegistryError

from .auth import Authenticator
from .transfer import ChunkedUpload, location_of, placement
from .types import (
    BlobInfo,
    Credentials,
    Manifest,
    ManifestInfo,
    UpstreamDigestMismatch,
    UpstreamError,
)
from .wire import READ_CHUNK, TRANSPORT_ERRORS, raise_for, read_limited

PAGE_BODY_LIMIT = 16 * 1024 * 1024
MAX_PAGES = 10_000
SMALL_BLOB = 1024 * 1024  # a blob up to this size goes whole in one POST (no PATCH)
_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


def _scope(repo: str, actions: str) -> str:
    return f"repository:{repo}:{actions}"


def _digest_of(algorithm: str, data: bytes) -> str:
    return str(digest_bytes(data, algorithm))


def _algorithm(digest: str) -> str:
    try:
        return parse_digest(digest).algorithm
    except RegistryError as exc:
        raise UpstreamError(0, "DIGEST_INVALID", exc.message) from None


class UpstreamClient:
    """A client of one OCI registry; use `async with` or call `close()`.

    Timeouts bound connecting and each silence while reading (`idle_timeout`), never a whole
    transfer: a 20 GB layer that keeps arriving is never cut.
    """

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        ca_file: str | None = None,
        insecure: bool = False,
        connect_timeout: float = 30.0,
        idle_timeout: float = 120.0,
        max_manifest_bytes: int = 4 * 1024 * 1024,
        retries: int = 5,
        chunk_size: int = 8 * 1024 * 1024,
        user_agent: str = "moorage-upstream",
    ) -> None:
        self.base = URL(base_url.rstrip("/"))
        self.max_manifest_bytes = max_manifest_bytes
        self.retries = retries
        self.chunk_size = chunk_size
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout,
            sock_read=idle_timeout,
        )
        self._ssl: ssl.SSLContext | bool = True
        if insecure:
            self._ssl = False
        elif ca_file:
            self._ssl = ssl.create_default_context(cafile=ca_file)
        self._headers = {"User-Agent": user_agent}
        self._session: aiohttp.ClientSession | None = None
        self._auth = Authenticator(credentials)

    @property
    def credentials(self) -> Credentials | None:
        """What the client authenticates with."""
        return self._auth.credentials

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- HTTP, authentication and errors -------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers=self._headers,
                connector=aiohttp.TCPConnector(ssl=self._ssl),
            )
        return self._session

    def _url(self, path: str) -> URL:
        return self.base.with_path(self.base.path.rstrip("/") + path, encoded=False)

    def _resolve(self, location: str) -> URL:
        return self.base.join(URL(location))

    async def _request(
        self,
        method: str,
        url: URL,
        scopes: tuple[str, ...],
        *,
        headers: dict[str, str] | None = None,
        data: bytes | Callable[[], AsyncIterable[bytes]] | None = None,
        ok: Iterable[int] = (200,),
        allow_redirects: bool = True,
    ) -> aiohttp.ClientResponse:
        """Send one request, answering one 401 challenge; the caller releases the response.
        Any status outside `ok` raises UpstreamError, a broken connection UNAVAILABLE. A
        streamed body is given as a function that starts it (called again for the retry)."""
        ok = tuple(ok)
        for attempt in (1, 2):
            if attempt == 1 and self._auth.needs_token(scopes):
                # the realm is known: skip the 401
                await self._auth.fetch_token(self._http(), scopes, None)
            sent = dict(headers or {})
            if (auth := self._auth.authorization(scopes)) is not None:
                sent["Authorization"] = auth
            try:
                body = data() if callable(data) else data
                resp = await self._http().request(
                    method, url, headers=sent, data=body, allow_redirects=allow_redirects
                )
            except TRANSPORT_ERRORS as exc:
                raise UpstreamError(0, "UNAVAILABLE", f"{method} {url.path}: {exc!r}") from None
            if (resp.status == 401 and attempt == 1
                    and await self._auth.answer(self._http(), resp, scopes, auth)):
                continue
            if resp.status in ok:
                return resp
            await raise_for(resp)
        raise AssertionError("unreachable: the second answer is returned or raised")

    async def call(
        self, method: str, path: str, repo: str | None, actions: str, *,
        headers: dict[str, str] | None = None, data: bytes | None = None,
        ok: Iterable[int] = (200,),
    ) -> aiohttp.ClientResponse:
        """One authenticated request to `path` of this registry (an extension's, say) for
        `actions` on `repo`; the caller releases the response."""
        scopes = (_scope(repo, actions),) if repo else ()
        return await self._request(method, self._url(path), scopes, headers=headers, data=data,
                                   ok=ok)

    # -- the API -------------------------------------------------------------------------------

    async def ping(self) -> None:
        """Check that the registry speaks /v2/ and accepts our credentials (raises if not)."""
        resp = await self._request("GET", self._url("/v2/"), ())
        resp.release()

    async def head_manifest(
        self, repo: str, reference: str, accept: Iterable[str]
    ) -> ManifestInfo | None:
        """Digest, media type and size of a manifest, or None when the upstream has none."""
        url = self._url(f"/v2/{repo}/manifests/{reference}")
        headers = {"Accept": ", ".join(accept)}
        try:
            resp = await self._request("HEAD", url, (_scope(repo, "pull"),), headers=headers)
        except UpstreamError as exc:
            if exc.status == 404:
                return None
            raise
        resp.release()
        digest = resp.headers.get("Docker-Content-Digest") or (
            reference if ":" in reference else None
        )
        if digest is None:  # a registry that only says it on GET
            got = await self.get_manifest(repo, reference, accept)
            return ManifestInfo(got.digest, got.media_type, len(got.content))
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return ManifestInfo(digest, media_type, int(resp.headers.get("Content-Length") or 0))

    async def get_manifest(self, repo: str, reference: str, accept: Iterable[str]) -> Manifest:
        """A manifest's verified digest, media type and exact bytes (at most max_manifest_bytes)."""
        url = self._url(f"/v2/{repo}/manifests/{reference}")
        headers = {"Accept": ", ".join(accept)}
        resp = await self._request("GET", url, (_scope(repo, "pull"),), headers=headers)
        try:
            content = await read_limited(resp, self.max_manifest_bytes, "manifest")
        finally:
            resp.release()
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        promised = resp.headers.get("Docker-Content-Digest")
        for expected in {d for d in (promised, reference if ":" in reference else None) if d}:
            actual = _digest_of(_algorithm(expected), content)
            if actual != expected:
                raise UpstreamDigestMismatch(expected, actual)
        digest = promised or (reference if ":" in reference else _digest_of("sha256", content))
        return Manifest(digest, media_type, content)

    async def put_manifest(
        self, repo: str, reference: str, media_type: str, content: bytes
    ) -> str:
        """Push a manifest under a tag or digest; returns its digest (checked against ours)."""
        url = self._url(f"/v2/{repo}/manifests/{reference}")
        ours = reference if ":" in reference else _digest_of("sha256", content)
        ours = _digest_of(_algorithm(ours), content)
        resp = await self._request(
            "PUT", url, (_scope(repo, "pull,push"),), headers={"Content-Type": media_type},
            data=content, ok=(201, 200),
        )
        resp.release()
        theirs = resp.headers.get("Docker-Content-Digest")
        if theirs and _algorithm(theirs) == _algorithm(ours) and theirs != ours:
            raise UpstreamDigestMismatch(ours, theirs, resp.status)
        return ours

    async def delete_manifest(self, repo: str, reference: str) -> bool:
        """Delete a tag (or a manifest by digest); False when the upstream had none."""
        url = self._url(f"/v2/{repo}/manifests/{reference}")
        try:
            resp = await self._request("DELETE", url, (_scope(repo, "delete"),),
                                       ok=(202, 200, 204))
        except UpstreamError as exc:
            if exc.status == 404:
                return False
            raise
        resp.release()
        return True

    async def head_blob(self, repo: str, digest: str) -> BlobInfo | None:
        """The size of a blob, or None when the repository does not have it."""
        url = self._url(f"/v2/{repo}/blobs/{digest}")
        try:
            resp = await self._request("HEAD", url, (_scope(repo, "pull"),))
        except UpstreamError as exc:
            if exc.status == 404:
                return None
            raise
        resp.release()
        return BlobInfo(digest, int(resp.headers.get("Content-Length") or 0))

    async def get_blob(
        self, repo: str, digest: str, offset: int = 0, *, hasher: Hasher | None = None,
        on_size: Callable[[int | None], None] | None = None,
    ) -> AsyncIterator[bytes]:
        """The blob's bytes from `offset`; a broken connection resumes with Range from the last
        byte received (`retries` failures in a row without progress give up), and the digest is
        checked once the last byte is in. From an offset > 0, pass the hasher of bytes 0..offset.
        `on_size` learns the blob's size (None: unknown) once the first answer arrives.
        """
        algorithm = _algorithm(digest)
        if offset and hasher is None:
            raise ValueError("get_blob from an offset needs the hasher of the bytes before it")
        hasher = hasher or new_hasher(algorithm)
        url = self._url(f"/v2/{repo}/blobs/{digest}")
        position, total, failures, attempts = offset, None, 0, 0
        while True:
            headers = {"Range": f"bytes={position}-"} if position else {}
            progressed = position
            try:
                resp = await self._request(
                    "GET", url, (_scope(repo, "pull"),), headers=headers, ok=(200, 206, 416)
                )
                try:
                    if resp.status == 416 and total is not None and position == total:
                        break
                    if resp.status == 416:
                        await raise_for(resp)
                    skip, total = placement(resp, position, total)
                    if on_size is not None:
                        on_size(total)
                        on_size = None
                    async for data in resp.content.iter_chunked(READ_CHUNK):
                        if skip:
                            cut = min(skip, len(data))
                            data, skip = data[cut:], skip - cut
                            if not data:
                                continue
                        if total is not None and position + len(data) > total:
                            raise UpstreamError(resp.status, "SIZE_INVALID",
                                                "the upstream sent more bytes than the blob has")
                        hasher.update(data)
                        position += len(data)
                        yield data
                finally:
                    resp.release()
                if total is None or position >= total:
                    break
                raise ConnectionResetError("the upstream ended the body early")
            except (UpstreamError, *TRANSPORT_ERRORS) as exc:
                if isinstance(exc, UpstreamError) and exc.status != 0:
                    raise
                failures = 0 if position > progressed else failures + 1
                attempts += 1
                if failures > self.retries or attempts > self.retries * 20:
                    raise UpstreamError(0, "UNAVAILABLE",
                                        f"blob {digest} broke at byte {position}: {exc!r}") from None
                await asyncio.sleep(min(0.1 * 2 ** failures, 5.0))
        actual = f"{algorithm}:{hasher.finalize()}"
        if actual != digest:
            raise UpstreamDigestMismatch(digest, actual)

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Mount a blob from another repository of the upstream; False if it would not (the
        upload session it opened instead is cancelled)."""
        url = self._url(f"/v2/{repo}/blobs/uploads/").with_query(mount=digest, **{"from": from_repo})
        scopes = (_scope(repo, "pull,push"), _scope(from_repo, "pull"))
        resp = await self._request("POST", url, scopes, ok=(201, 202))
        resp.release()
        if resp.status == 201:
            return True
        if location := resp.headers.get("Location"):
            try:
                (await self._request("DELETE", self._resolve(location), scopes,
                                     ok=(204, 200, 404))).release()
            except UpstreamError:
                pass  # an abandoned session expires on its own
        return False

    async def push_blob(
        self, repo: str, digest: str, chunks: AsyncIterable[bytes], size: int
    ) -> None:
        """Upload a blob chunked (POST, PATCH…, PUT). When a request breaks, the client asks the
        upload for the offset it acknowledged and sends only the rest. One chunk is held in
        memory at a time."""
        _algorithm(digest)
        upload, chunk_size = await self._session_for(repo, None)
        pending = bytearray()
        async for data in chunks:
            pending += data
            while len(pending) > chunk_size:  # keep the tail: the last chunk goes with the PUT
                piece = bytes(pending[:chunk_size])
                del pending[:chunk_size]
                await upload.send_chunk(piece)
        if upload.offset + len(pending) != size:
            raise ValueError(f"push_blob got {upload.offset + len(pending)} bytes, not {size}")
        await upload.finish(repo, digest, bytes(pending))

    async def push_blob_from(
        self, repo: str, digest: str, source: Callable[[int], AsyncIterable[bytes]], size: int,
        location: str | None = None, on_progress: Callable[[str, int], None] | None = None,
    ) -> None:
        """`push_blob` whose bytes come from `source(offset)`, continuing the upload session at
        `location` (as an earlier try's `on_progress` reported it) from the offset the upstream
        acknowledged; a session the upstream no longer knows is started again. Each PATCH (of
        up to `chunk_size` bytes) streams straight from `source`, and a break resumes from the
        offset the upstream acknowledged; `on_progress` learns the session's URL and offset."""
        _algorithm(digest)
        if location is None and size <= SMALL_BLOB:
            whole = b"".join([data async for data in source(0)])
            if len(whole) != size:
                raise ValueError(f"push_blob got {len(whole)} bytes, not {size}")
            await self._push_small(repo, digest, whole)
            return
        upload, chunk_size = await self._session_for(repo, location)
        if on_progress is not None:
            on_progress(str(upload.location), upload.offset)
        await upload.stream(source, size, chunk_size, on_progress)
        await upload.finish(repo, digest, b"")

    async def _push_small(self, repo: str, digest: str, whole: bytes) -> None:
        """A small blob in one request (a single-POST upload); into the session a registry
        without those opens instead, with a PUT."""
        scopes = (_scope(repo, "pull,push"),)
        url = self._url(f"/v2/{repo}/blobs/uploads/").with_query(digest=digest)
        resp = await self._request("POST", url, scopes, data=whole, ok=(201, 202),
                                   headers={"Content-Type": "application/octet-stream"})
        resp.release()
        if resp.status == 202:
            upload = ChunkedUpload(self, scopes, self._resolve(location_of(resp)))
            await upload.finish(repo, digest, whole)

    async def _session_for(self, repo: str, location: str | None) -> tuple[ChunkedUpload, int]:
        """The upload session at `location` where it stands, else a new one; and the chunk size
        to send it (ours, or the upstream's minimum if larger)."""
        scopes = (_scope(repo, "pull,push"),)
        if location:
            upload = ChunkedUpload(self, scopes, self._resolve(location))
            try:
                await upload.recover(0)
                return upload, self.chunk_size
            except UpstreamError as exc:
                if exc.status not in (400, 404, 416):
                    raise  # else expired or cancelled: start again
        resp = await self._request("POST", self._url(f"/v2/{repo}/blobs/uploads/"), scopes,
                                   ok=(202,), data=b"")
        resp.release()
        upload = ChunkedUpload(self, scopes, self._resolve(location_of(resp)))
        return upload, max(self.chunk_size, int(resp.headers.get("OCI-Chunk-Min-Length") or 0))

    async def tags(self, repo: str, page_size: int | None = None) -> list[str]:
        """Every tag of a repository, following the `Link` pages."""
        url: URL | None = self._url(f"/v2/{repo}/tags/list")
        if page_size and url is not None:
            url = url.with_query(n=page_size)
        found: list[str] = []
        async for doc in self._pages(url, (_scope(repo, "pull"),)):
            found += [t for t in doc.get("tags") or [] if isinstance(t, str)]
        return found

    async def referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[dict[str, Any]]:
        """The descriptors of the manifests whose subject is `digest`, every page of them."""
        url = self._url(f"/v2/{repo}/referrers/{digest}")
        if artifact_type:
            url = url.with_query(artifactType=artifact_type)
        found: list[dict[str, Any]] = []
        async for doc in self._pages(url, (_scope(repo, "pull"),)):
            found += [m for m in doc.get("manifests") or [] if isinstance(m, dict)]
        return found

    async def _pages(self, url: URL | None, scopes: tuple[str, ...]) -> AsyncIterator[dict]:
        for _ in range(MAX_PAGES):
            if url is None:
                return
            resp = await self._request("GET", url, scopes)
            try:
                body = await read_limited(resp, PAGE_BODY_LIMIT, "listing page")
            finally:
                resp.release()
            try:
                doc = json.loads(body)
            except ValueError:
                raise UpstreamError(resp.status, "INVALID_BODY", "a listing page is not JSON")\
                    from None
            if not isinstance(doc, dict):
                raise UpstreamError(resp.status, "INVALID_BODY", "a listing page is not an object")
            yield doc
            link = _NEXT.search(resp.headers.get("Link", ""))
            url = self._resolve(link.group(1)) if link else None
        raise UpstreamError(0, "TOO_MANY_PAGES", f"more than {MAX_PAGES} pages")
