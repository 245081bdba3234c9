"""The upstream client (moorage.upstream) against a real auth-enabled Moorage, through a TCP relay
of the test's own that counts requests and cuts connections, and against lying peers."""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Self

import pytest
import requests
from aiohttp import web
from support.oci import (
    Blob,
    blob_url,
    digest_of,
    make_artifact,
    make_image,
    new_repo,
    new_tag,
)
from support.servers import BACKEND, SCALE_OUT_BACKENDS, Server, free_port, start_registry

from moorage.oci.mediatypes import MANIFEST_TYPES
from moorage.upstream import (
    Basic,
    Upstream,
    UpstreamClient,
    UpstreamDigestMismatch,
    UpstreamError,
)

ACCEPT = sorted(MANIFEST_TYPES)
ADMIN = "admin"


class Relay:
    """A TCP relay to `port` on 127.0.0.1 that keeps what clients sent and, `cuts` times, aborts
    a connection once `cut_after` bytes of one answer have passed (`upload_cuts` times, once a
    connection has carried `cut_upload_after` bytes from the client)."""

    def __init__(
        self, port: int, cut_after: int | None = None, cuts: int = 0,
        cut_upload_after: int | None = None, upload_cuts: int = 0,
    ) -> None:
        self.target = port
        self.cut_after = cut_after
        self.cuts = cuts
        self.cut_upload_after = cut_upload_after
        self.upload_cuts = upload_cuts
        self.sent = bytearray()  # every byte clients sent, in arrival order
        self.server: asyncio.Server | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, pattern: bytes) -> int:
        """How many times clients sent `pattern` (a regex; not anchored: a request line may
        follow the previous request's body with no line break)."""
        return len(re.findall(pattern, bytes(self.sent)))

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        answered = [0]  # bytes of the current answer (reset by each new client write)

        async def upward() -> None:
            carried = 0
            while data := await reader.read(65536):
                carried += len(data)
                if self.cut_upload_after is not None and self.upload_cuts and \
                        carried > self.cut_upload_after:
                    self.upload_cuts -= 1
                    writer.transport.abort()
                    up_writer.transport.abort()
                    return
                self.sent += data
                answered[0] = 0
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downward() -> None:
            while data := await up_reader.read(65536):
                if self.cut_after is not None and self.cuts and \
                        answered[0] + len(data) > self.cut_after:
                    self.cuts -= 1
                    writer.write(data[: self.cut_after - answered[0]])
                    await writer.drain()
                    writer.transport.abort()
                    up_writer.transport.abort()
                    return
                answered[0] += len(data)
                writer.write(data)
                await writer.drain()
            writer.close()

        try:
            await asyncio.gather(upward(), downward())
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            up_writer.transport.abort()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """An auth-enabled Moorage and its admin's password."""
    password = "pw-" + os.urandom(8).hex()
    reg = start_registry(tmp_path_factory.mktemp("upstream"), "--workers", "1", auth=True,
                         MOORAGE_ADMIN_PASSWORD=password)
    yield reg, password
    reg.stop()


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def _pull(client: UpstreamClient, repo: str, digest: str) -> bytes:
    return b"".join([part async for part in client.get_blob(repo, digest)])


async def _push_image(client: UpstreamClient, repo: str, tag: str, m: Any) -> None:
    for blob in m.blobs:
        await client.push_blob(repo, blob.digest, _chunks(blob.data, 4096), len(blob.data))
    await client.put_manifest(repo, tag, m.media_type, m.body)


def test_the_client_is_an_upstream() -> None:
    assert isinstance(UpstreamClient("http://127.0.0.1:1"), Upstream)


def test_token_flow_fetches_one_token_per_scope_and_reuses_it(upstream) -> None:
    reg, password = upstream
    repo, data = new_repo("up"), os.urandom(5000)

    async def main() -> None:
        async with Relay(reg.port) as relay, \
                UpstreamClient(relay.url, Basic(ADMIN, password)) as client:
            await client.ping()
            await client.push_blob(repo, digest_of(data), _chunks(data, 1000), len(data))
            assert await client.head_blob(repo, digest_of(data)) is not None
            assert await client.head_blob(repo, digest_of(data)) is not None
            # ping (no scope), pull+push, pull: one token each, the second HEAD reuses one.
            assert relay.requests(rb"GET /token\?") == 3
            assert relay.requests(rb"Authorization: Bearer ") >= 4
            assert relay.requests(rb"HEAD /v2/") == 2

    asyncio.run(main())


def test_chunked_push_then_pull_back_byte_identical(upstream) -> None:
    reg, password = upstream
    repo, other, tag = new_repo("up"), new_repo("up"), new_tag()
    layer = Blob(os.urandom(3 * 1024 * 1024 + 12345), "application/vnd.oci.image.layer.v1.tar")
    image = make_image(layer_blobs=[layer])

    async def main() -> None:
        async with Relay(reg.port) as relay, \
                UpstreamClient(relay.url, Basic(ADMIN, password), chunk_size=64 * 1024) as client:
            await _push_image(client, repo, tag, image)
            # the server advertises 1 MiB chunks: 3 PATCHes, the rest with the PUT
            assert relay.requests(rb"PATCH /v2/" + repo.encode()) == 3
            assert await _pull(client, repo, layer.digest) == layer.data
            got = await client.get_manifest(repo, tag, ACCEPT)
            assert got == (image.digest, image.media_type, image.body)
            head = await client.head_manifest(repo, tag, ACCEPT)
            assert head is not None
            assert (head.digest, head.size) == (image.digest, len(image.body))
            assert await client.head_manifest(repo, "nope", ACCEPT) is None
            assert await client.mount_blob(other, layer.digest, repo) is True
            assert await client.mount_blob(other, digest_of(b"never pushed"), repo) is False

    asyncio.run(main())
    # read back without the client too: the bytes landed as sent
    token = requests.get(f"{reg.url}/token", auth=(ADMIN, password), timeout=30,
                         params={"service": "moorage", "scope": f"repository:{other}:pull"})
    r = requests.get(blob_url(reg, other, layer.digest), timeout=60,
                     headers={"Authorization": "Bearer " + token.json()["token"]})
    assert r.status_code == 200 and r.content == layer.data


def test_tags_and_referrers_follow_every_page(upstream) -> None:
    reg, password = upstream
    repo = new_repo("up")
    image = make_image()
    tags = sorted(new_tag() for _ in range(3))
    signatures = [make_artifact(subject=image) for _ in range(2)]

    async def main() -> None:
        async with Relay(reg.port) as relay, \
                UpstreamClient(relay.url, Basic(ADMIN, password)) as client:
            for tag in tags:
                await _push_image(client, repo, tag, image)
            for sig in signatures:
                await _push_image(client, repo, sig.digest, sig)
            assert sorted(await client.tags(repo, page_size=1)) == tags
            assert relay.requests(rb"GET /v2/" + repo.encode() + rb"/tags/list") == 3
            listed = await client.referrers(repo, image.digest)
            assert sorted(d["digest"] for d in listed) == sorted(s.digest for s in signatures)

    asyncio.run(main())


def test_pull_resumes_with_range_after_broken_connections(upstream) -> None:
    reg, password = upstream
    repo, data = new_repo("up"), os.urandom(2 * 1024 * 1024 + 7)

    async def main() -> None:
        async with UpstreamClient(reg.url, Basic(ADMIN, password)) as direct:
            await direct.push_blob(repo, digest_of(data), _chunks(data, 65536), len(data))
        async with Relay(reg.port, cut_after=300_000, cuts=2) as relay, \
                UpstreamClient(relay.url, Basic(ADMIN, password)) as client:
            await client.ping()  # learn the realm: the blob GET then goes out with its token
            assert await _pull(client, repo, digest_of(data)) == data
            assert relay.cuts == 0
            assert relay.requests(rb"GET /v2/" + repo.encode() + rb"/blobs/") == 3
            # each resumption asks for the bytes after the last one received, not from 0
            starts = [int(s) for s in re.findall(rb"(?m)^Range: bytes=(\d+)-", relay.sent)]
            assert len(starts) == 2 and all(0 < s < len(data) for s in starts)
            assert starts[0] < starts[1]

    asyncio.run(main())


def test_push_resumes_from_the_acknowledged_offset_after_a_broken_connection(upstream) -> None:
    reg, password = upstream
    repo, data = new_repo("up"), os.urandom(4 * 1024 * 1024 + 99)

    async def main() -> None:
        async with Relay(reg.port, cut_upload_after=2_500_000, upload_cuts=1) as relay, \
                UpstreamClient(relay.url, Basic(ADMIN, password), chunk_size=1 << 20) as client:
            await client.ping()
            await client.push_blob(repo, digest_of(data), _chunks(data, 65536), len(data))
            assert relay.upload_cuts == 0
            # it asked the upload where it stood, then sent only what was not acknowledged
            assert relay.requests(rb"GET /v2/" + repo.encode() + rb"/blobs/uploads/") == 1
            assert len(relay.sent) < len(data) + 2 * 1024 * 1024
            assert await _pull(client, repo, digest_of(data)) == data

    asyncio.run(main())


@pytest.mark.skipif(BACKEND in SCALE_OUT_BACKENDS,
                    reason="on S3 a broken PATCH keeps its bytes up to the last part boundary "
                    "(5 MiB parts); this cut comes at 3 MiB, so the filesystem tier tests it")
def test_a_streamed_push_resumes_after_what_reached_the_upstream_of_a_broken_patch(
        upstream) -> None:
    reg, password = upstream
    repo, data = new_repo("up"), os.urandom(6 * 1024 * 1024 + 7)
    cut_at = 3 * 1024 * 1024

    def source(offset: int) -> AsyncIterator[bytes]:
        return _chunks(data[offset:], 65536)

    async def main() -> None:
        async with Relay(reg.port, cut_upload_after=cut_at, upload_cuts=1) as relay, \
                UpstreamClient(relay.url, Basic(ADMIN, password), chunk_size=64 << 20) as client:
            await client.ping()
            await client.push_blob_from(repo, digest_of(data), source, len(data))
            assert relay.upload_cuts == 0
            # the first PATCH broke mid-body; the upstream kept what reached it, and the
            # retry (one status GET) sent only the rest
            assert relay.requests(rb"PATCH /v2/" + repo.encode()) == 2
            assert relay.requests(rb"GET /v2/" + repo.encode() + rb"/blobs/uploads/") == 1
            assert len(relay.sent) < len(data) + 1024 * 1024, len(relay.sent) - len(data)
            assert await _pull(client, repo, digest_of(data)) == data

    asyncio.run(main())


def test_bad_credentials_are_an_upstream_error_without_the_password(upstream) -> None:
    reg, _ = upstream
    secret = "wrong-" + os.urandom(8).hex()

    async def main() -> None:
        async with UpstreamClient(reg.url, Basic(ADMIN, secret)) as client:
            with pytest.raises(UpstreamError) as caught:
                await client.ping()
        assert caught.value.status == 401
        assert caught.value.code == "UNAUTHORIZED"
        assert secret not in str(caught.value) and secret not in repr(client.credentials)

    asyncio.run(main())


# -- peers of the test's own -------------------------------------------------------------------


async def _serve(routes: list[web.RouteDef], check: Callable[[str], Awaitable[None]]) -> None:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await check(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def test_a_lying_peer_is_refused() -> None:
    real, fake = b'{"schemaVersion":2}', b'{"schemaVersion":2,"x":1}'
    blob, other = os.urandom(1000), os.urandom(1000)

    async def manifest(request: web.Request) -> web.Response:
        return web.Response(body=fake, content_type="application/vnd.oci.image.manifest.v1+json",
                            headers={"Docker-Content-Digest": digest_of(real)})

    async def blob_get(request: web.Request) -> web.Response:
        return web.Response(body=other)

    async def check(url: str) -> None:
        async with UpstreamClient(url) as client:
            with pytest.raises(UpstreamDigestMismatch):
                await client.get_manifest("r", "latest", ACCEPT)
            with pytest.raises(UpstreamDigestMismatch):
                await client.get_manifest("r", digest_of(real), ACCEPT)
            with pytest.raises(UpstreamDigestMismatch):
                await _pull(client, "r", digest_of(blob))
        async with UpstreamClient(url, max_manifest_bytes=10) as small:
            with pytest.raises(UpstreamError) as caught:
                await small.get_manifest("r", "latest", ACCEPT)
            assert caught.value.code == "SIZE_INVALID"

    asyncio.run(_serve([web.get("/v2/r/manifests/{ref}", manifest),
                        web.get("/v2/r/blobs/{digest}", blob_get)], check))


def test_a_basic_challenge_is_answered_with_basic_credentials() -> None:
    expected = "Basic " + base64.b64encode(b"u:p").decode()

    async def ping(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") == expected:
            return web.json_response({})
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "who are you", "x": "y" * 200_000}]},
            status=401, headers={"WWW-Authenticate": 'Basic realm="peer"'},
        )

    async def check(url: str) -> None:
        async with UpstreamClient(url, Basic("u", "p")) as client:
            await client.ping()
        async with UpstreamClient(url) as anonymous:
            with pytest.raises(UpstreamError) as caught:
                await anonymous.ping()
        # the error body is larger than 64 KiB: only its start is read, so no code is parsed
        assert (caught.value.status, caught.value.code) == (401, "HTTP_401")

    asyncio.run(_serve([web.get("/v2/", ping)], check))
