"""The pull-through cache: a second Moorage on loopback is the upstream, reached through a
fault-injecting proxy (tests/support/faultproxy.py) that counts what the cache asks of it."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from support.containerd import Containerd
from support.faultproxy import FaultProxy
from support.metrics import metrics_text
from support.oci import (
    ACCEPT_MANIFESTS,
    Blob,
    Manifest,
    assert_error,
    blob_url,
    digest_of,
    make_artifact,
    make_image,
    make_index,
    manifest_url,
    new_repo,
    new_tag,
    push_tree,
)
from support.servers import BalancedCluster, Server, run_moorage, start_registry

HUB, SLOW = "hub", "hubslow"  # revalidate every pull / once an hour


@dataclass
class World:
    upstream: Server
    proxy: FaultProxy
    cache: Server


def _admin(server: Server, *args: str, input: str | None = None) -> str:
    """`moorage ARGS` on the server's own registry (its data dir, database and storage)."""
    node = server.nodes[0] if isinstance(server, BalancedCluster) else server
    return run_moorage(*args, "--data-dir", str(node.data_dir), *node.extra_args, env=node.env,
                       input=input).stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    upstream = start_registry(tmp_path_factory.mktemp("upstream"))
    proxy = FaultProxy(upstream.port).start()
    cache = start_registry(tmp_path_factory.mktemp("cache"), MOORAGE_CACHE_UPSTREAM_TIMEOUT="3")
    try:
        _admin(cache, "upstream", "add", "up", proxy.url)
        _admin(cache, "cache", "add", "hub", "--upstream", "up", "--namespace", HUB,
               "--revalidate", "0")
        _admin(cache, "cache", "add", "slow", "--upstream", "up", "--namespace", SLOW,
               "--revalidate", "1h")
        time.sleep(1.2)  # the servers' view of the cache namespaces refreshes each second
        yield World(upstream, proxy, cache)
    finally:
        cache.stop()
        proxy.stop()
        upstream.stop()


@pytest.fixture(autouse=True)
def healthy(world: World) -> Iterator[None]:
    world.proxy.heal()
    yield
    world.proxy.heal()


def _get_manifest(reg: Server, repo: str, ref: str, method: str = "GET") -> requests.Response:
    return requests.request(method, manifest_url(reg, repo, ref), timeout=60,
                            headers={"Accept": ACCEPT_MANIFESTS})


def _get_blob(reg: Server, repo: str, digest: str) -> requests.Response:
    return requests.get(blob_url(reg, repo, digest), timeout=120)


def _pushed_image(world: World, layer_size: int = 4096) -> tuple[str, str, Manifest]:
    repo, tag = new_repo("lib"), new_tag()
    layer = Blob(os.urandom(layer_size), "application/vnd.oci.image.layer.v1.tar")
    image = make_image(layer_blobs=[layer])
    push_tree(world.upstream, repo, image, tag)
    return repo, tag, image


def test_multi_arch_pull_by_tag_fetches_only_the_requested_platform(world: World) -> None:
    repo, tag = new_repo("lib"), new_tag()
    amd, arm = make_image(layers=2), make_image(layers=2)
    index = make_index([amd, arm])
    push_tree(world.upstream, repo, index, tag)
    cached = f"{HUB}/{repo}"

    r = _get_manifest(world.cache, cached, tag)
    assert r.status_code == 200 and r.content == index.body
    assert r.headers["Docker-Content-Digest"] == index.digest
    child = next(m for m in r.json()["manifests"] if m["platform"]["architecture"] == "amd64")
    assert child["digest"] == amd.digest
    r = _get_manifest(world.cache, cached, amd.digest)
    assert r.status_code == 200 and r.content == amd.body
    for blob in amd.blobs:
        got = _get_blob(world.cache, cached, blob.digest)
        assert got.status_code == 200 and got.content == blob.data

    for blob in amd.blobs:
        assert world.proxy.count("GET", f"/v2/{repo}/blobs/{blob.digest}$") == 1
    assert world.proxy.count("GET", f"/v2/{repo}/manifests/{arm.digest}$") == 0
    for blob in arm.blobs:
        assert world.proxy.count("GET", f"/v2/{repo}/blobs/{blob.digest}$") == 0

    # containerd resolves the tag, then pulls by the index digest: served from the cache
    before = world.proxy.total()
    r = _get_manifest(world.cache, cached, index.digest)
    assert r.status_code == 200 and r.content == index.body
    assert world.proxy.total() == before


def test_concurrent_cold_pulls_of_one_blob_share_one_upstream_get(world: World) -> None:
    repo, _, image = _pushed_image(world, layer_size=2 * 1024 * 1024)
    layer = image.blobs[-1]
    world.proxy.rate = 2 * 1024 * 1024  # ~1 s on the wire: every client arrives during it
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _get_blob(world.cache, f"{HUB}/{repo}", layer.digest),
                                range(8)))
    assert [r.status_code for r in results] == [200] * 8
    assert all(r.content == layer.data for r in results)
    assert world.proxy.count("GET", f"/v2/{repo}/blobs/{layer.digest}$") == 1


@pytest.mark.parametrize("by", ["digest", "tag"])
def test_concurrent_cold_pulls_of_one_manifest_share_one_upstream_get(world: World,
                                                                      by: str) -> None:
    repo, tag, image = _pushed_image(world)
    reference = image.digest if by == "digest" else tag
    # eight clients at once (by tag each first HEADs the tag): one GET of the manifest.
    # No proxy.rate here: it delays a connection's next answer, past the cache's timeout.
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(
            lambda _: _get_manifest(world.cache, f"{HUB}/{repo}", reference), range(8)))
    assert [r.status_code for r in results] == [200] * 8
    assert all(r.content == image.body for r in results)
    assert world.proxy.count("GET", f"/v2/{repo}/manifests/") == 1


def test_a_cold_blob_reaches_the_client_before_the_upstream_transfer_ends(world: World) -> None:
    repo, _, image = _pushed_image(world, layer_size=3 * 1024 * 1024)
    layer = image.blobs[-1]
    world.proxy.rate = 1024 * 1024  # ~3 s upstream
    started = time.monotonic()
    with requests.get(blob_url(world.cache, f"{HUB}/{repo}", layer.digest), stream=True,
                      timeout=120) as r:
        assert r.status_code == 200
        chunks = r.iter_content(64 * 1024)
        first = next(chunks)
        first_byte = time.monotonic() - started
        body = first + b"".join(chunks)
    total = time.monotonic() - started
    assert body == layer.data
    assert first_byte < total / 2, (first_byte, total)


@pytest.mark.parametrize("fault", ["down", "hang", "429", "503"])
def test_a_cached_tag_is_served_stale_when_the_upstream_fails(world: World, fault: str) -> None:
    repo, tag, image = _pushed_image(world)
    cached = f"{HUB}/{repo}"
    r = _get_manifest(world.cache, cached, tag)
    assert r.status_code == 200 and "Warning" not in r.headers
    if fault == "down":
        world.proxy.cut = True
    elif fault == "hang":
        world.proxy.hang = True  # the cache gives up after MOORAGE_CACHE_UPSTREAM_TIMEOUT
    else:
        world.proxy.status, world.proxy.retry_after = int(fault), 7
    r = _get_manifest(world.cache, cached, tag)
    assert r.status_code == 200 and r.content == image.body
    assert r.headers["Warning"] == '110 - "stale: upstream unavailable"'
    heads = world.proxy.count("HEAD", f"/v2/{repo}/manifests/{tag}$")
    # a cut connection may be retried once by the client; an answer is taken as it is
    assert heads >= 2 if fault in ("down", "hang") else heads == 2


def test_uncached_content_gets_the_upstreams_error(world: World) -> None:
    repo = new_repo("lib")
    r = _get_manifest(world.cache, f"{HUB}/{repo}", "nope")
    assert_error(r, 404, "MANIFEST_UNKNOWN")
    world.proxy.status, world.proxy.retry_after = 429, 30
    r = _get_manifest(world.cache, f"{HUB}/{repo}", "other")
    assert_error(r, 429, "TOOMANYREQUESTS")
    assert r.headers["Retry-After"] == "30"
    r = _get_blob(world.cache, f"{HUB}/{repo}", digest_of(b"never pushed"))
    assert_error(r, 429, "TOOMANYREQUESTS")
    world.proxy.heal()
    r = _get_blob(world.cache, f"{HUB}/{repo}", digest_of(b"never pushed"))
    assert_error(r, 404, "BLOB_UNKNOWN")


def test_a_pull_by_digest_of_cached_content_sends_nothing_upstream(world: World) -> None:
    repo, tag, image = _pushed_image(world)
    cached = f"{HUB}/{repo}"
    assert _get_manifest(world.cache, cached, tag).status_code == 200
    for blob in image.blobs:
        assert _get_blob(world.cache, cached, blob.digest).status_code == 200
    before = world.proxy.total()
    world.proxy.cut = True  # and even if it were down
    r = _get_manifest(world.cache, cached, image.digest)
    assert r.status_code == 200 and "Warning" not in r.headers
    assert _get_manifest(world.cache, cached, image.digest, "HEAD").status_code == 200
    for blob in image.blobs:
        got = _get_blob(world.cache, cached, blob.digest)
        assert got.status_code == 200 and got.content == blob.data
    assert world.proxy.total() == before


def test_a_tag_younger_than_revalidate_is_not_checked_upstream(world: World) -> None:
    repo, tag, image = _pushed_image(world)
    cached = f"{SLOW}/{repo}"
    assert _get_manifest(world.cache, cached, tag).status_code == 200
    before = world.proxy.total()
    r = _get_manifest(world.cache, cached, tag)
    assert r.status_code == 200 and r.content == image.body
    assert world.proxy.total() == before


def test_a_moved_upstream_tag_is_followed_and_a_known_digest_not_fetched_again(
        world: World) -> None:
    repo, tag, first = _pushed_image(world)
    cached = f"{HUB}/{repo}"
    assert _get_manifest(world.cache, cached, tag).status_code == 200
    second = make_image()
    push_tree(world.upstream, repo, second, tag)
    r = _get_manifest(world.cache, cached, tag)
    assert r.status_code == 200 and r.content == second.body
    # back to the first (stored by digest already): a HEAD, no manifest body fetched
    push_tree(world.upstream, repo, first, tag)
    gets = world.proxy.count("GET", f"/v2/{repo}/manifests/")
    r = _get_manifest(world.cache, cached, tag)
    assert r.status_code == 200 and r.content == first.body
    assert world.proxy.count("GET", f"/v2/{repo}/manifests/") == gets


def test_a_blob_stored_already_is_linked_after_a_head_without_a_get(world: World) -> None:
    repo, tag, image = _pushed_image(world)
    other = new_repo("lib")
    push_tree(world.upstream, other, image, tag)  # the same layer in two upstream repositories
    layer = image.blobs[-1]
    assert _get_blob(world.cache, f"{HUB}/{repo}", layer.digest).content == layer.data
    got = _get_blob(world.cache, f"{SLOW}/{other}", layer.digest)
    assert got.status_code == 200 and got.content == layer.data
    assert world.proxy.count("HEAD", f"/v2/{other}/blobs/{layer.digest}$") == 1
    assert world.proxy.count("GET", f"/v2/{other}/blobs/{layer.digest}$") == 0
    # a blob the upstream's repository does not have is not lent from storage
    r = _get_blob(world.cache, f"{HUB}/{new_repo('lib')}", layer.digest)
    assert_error(r, 404, "BLOB_UNKNOWN")


def test_pushes_into_a_cache_namespace_are_refused_and_hosted_ones_work(world: World) -> None:
    data = os.urandom(100)
    r = requests.post(f"{world.cache.url}/v2/{HUB}/{new_repo('lib')}/blobs/uploads/",
                      params={"digest": digest_of(data)}, data=data, timeout=30)
    assert_error(r, 405, "UNSUPPORTED")
    image = make_artifact(layers=[])
    r = requests.put(manifest_url(world.cache, f"{HUB}/{new_repo('lib')}", "v1"),
                     data=image.body, headers={"Content-Type": image.media_type}, timeout=30)
    assert_error(r, 405, "UNSUPPORTED")
    assert "cache namespace" in r.json()["errors"][0]["message"]
    hosted = f"local/{new_repo('app')}"
    push_tree(world.cache, hosted, image, "v1")
    r = _get_manifest(world.cache, hosted, "v1")
    assert r.status_code == 200 and r.content == image.body


def test_ns_parameter_maps_a_mirror_request_to_the_cache(world: World) -> None:
    repo, tag, image = _pushed_image(world)
    r = requests.get(manifest_url(world.cache, repo, tag), params={"ns": world.proxy.host},
                     headers={"Accept": ACCEPT_MANIFESTS}, timeout=60)
    assert r.status_code == 200 and r.content == image.body
    r = _get_manifest(world.cache, f"{HUB}/{repo}", image.digest)
    assert r.status_code == 200  # stored in the hub namespace


def test_referrers_are_proxied(world: World) -> None:
    repo, _, image = _pushed_image(world)
    signature = make_artifact(subject=image)
    push_tree(world.upstream, repo, signature)
    r = requests.get(f"{world.cache.url}/v2/{HUB}/{repo}/referrers/{image.digest}",
                     timeout=60)
    assert r.status_code == 200
    assert [m["digest"] for m in r.json()["manifests"]] == [signature.digest]


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_skopeo_copies_an_image_through_the_cache(world: World, tmp_path: Path) -> None:
    repo, tag, image = new_repo("lib"), new_tag(), make_image(layers=2)  # gzip layers: kept
    push_tree(world.upstream, repo, image, tag)
    out = tmp_path / "oci"
    p = subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false",
         f"docker://{world.cache.host}/{HUB}/{repo}:{tag}", f"oci:{out}:x"],
        capture_output=True, text=True, timeout=180, check=False)
    assert p.returncode == 0, p.stderr
    copied = {p.read_bytes() for p in (out / "blobs" / "sha256").iterdir()}
    assert image.blobs[-1].data in copied
    assert world.proxy.count("GET", f"/v2/{repo}/blobs/{image.blobs[-1].digest}$") == 1


def test_ctr_pulls_a_multi_arch_image_through_the_cache_by_tag_and_by_index_digest(
        world: World, containerd: Containerd) -> None:
    repo, tag = new_repo("lib"), new_tag()
    index = make_index([make_image(), make_image()])
    push_tree(world.upstream, repo, index, tag)
    for ref in (f"{world.cache.host}/{HUB}/{repo}:{tag}",
                f"{world.cache.host}/{HUB}/{repo}@{index.digest}"):
        # a pull without the unpack (the test layers are no rootfs)
        p = containerd.ctr("content", "fetch", "--plain-http", "--platform", "linux/amd64", ref)
        assert p.returncode == 0, p.stderr
    arm64 = index.children[1]
    # only the pulled platform's layers came from the upstream
    assert world.proxy.count("GET", f"/v2/{repo}/blobs/{arm64.blobs[-1].digest}$") == 0


def test_an_upstream_with_auth_works_through_a_robot_and_its_secret_is_sealed(
        tmp_path: Path) -> None:
    password = "pw-" + os.urandom(8).hex()
    upstream = start_registry(tmp_path / "up", auth=True, MOORAGE_ADMIN_PASSWORD=password)
    # a shared database (scale-out backends) has no key file: the key is a setting there
    key = base64.b64encode(os.urandom(32)).decode()
    cache = start_registry(tmp_path / "cache", MOORAGE_SECRETS_KEY=key)
    try:
        team = "team" + os.urandom(4).hex()
        _admin(upstream, "namespace", "add", team)
        out = _admin(upstream, "robot", "add", "puller", "-n", f"{team}=pull")
        robot = re.search(r"robot account: (\S+)", out).group(1)  # type: ignore[union-attr]
        secret = re.search(r"secret \(shown once\): (\S+)", out).group(1)  # type: ignore[union-attr]
        image = make_image()
        token = requests.get(f"{upstream.url}/token", auth=("admin", password), timeout=30,
                             params={"service": "moorage",
                                     "scope": f"repository:{team}/app:pull,push"}).json()["token"]
        for blob in image.blobs:
            r = requests.post(f"{upstream.url}/v2/{team}/app/blobs/uploads/",
                              params={"digest": blob.digest}, data=blob.data, timeout=30,
                              headers={"Authorization": f"Bearer {token}",
                                       "Content-Type": "application/octet-stream"})
            assert r.status_code == 201, r.text
        r = requests.put(manifest_url(upstream, f"{team}/app", "v1"), data=image.body, timeout=30,
                         headers={"Authorization": f"Bearer {token}",
                                  "Content-Type": image.media_type})
        assert r.status_code == 201, r.text

        _admin(cache, "upstream", "add", "secured", upstream.url, "--username", robot,
               "--password-stdin", input=secret + "\n")
        _admin(cache, "cache", "add", "sec", "--upstream", "secured", "--namespace", "sec")
        time.sleep(1.2)
        r = _get_manifest(cache, f"sec/{team}/app", "v1")
        assert r.status_code == 200 and r.content == image.body
        got = _get_blob(cache, f"sec/{team}/app", image.blobs[-1].digest)
        assert got.status_code == 200 and got.content == image.blobs[-1].data
        stored = b"".join(p.read_bytes() for p in Path(cache.data_dir).glob("moorage.db*"))
        if stored:  # the embedded database: the secret is nowhere in it
            assert secret.encode() not in stored
            assert b"v1:" in stored
    finally:
        cache.stop()
        upstream.stop()


class _Liar(BaseHTTPRequestHandler):
    """An upstream whose blobs are not what their digest says (same length, other bytes)."""

    gets = 0
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/v2/":
            self._answer(b"{}")
            return
        type(self).gets += 1
        self._answer(os.urandom(300_000))

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_blob_whose_digest_does_not_match_is_discarded_and_the_client_cut(
        world: World) -> None:
    liar = ThreadingHTTPServer(("127.0.0.1", 0), _Liar)
    threading.Thread(target=liar.serve_forever, daemon=True).start()
    try:
        _admin(world.cache, "upstream", "add", "liar", f"http://127.0.0.1:{liar.server_port}")
        _admin(world.cache, "cache", "add", "liar", "--upstream", "liar", "--namespace", "liar")
        time.sleep(1.2)
        digest = digest_of(os.urandom(300_000))
        cut = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)
        for _ in range(2):
            with pytest.raises(cut):  # the status was 200; the last byte never comes
                requests.get(blob_url(world.cache, "liar/lib/x", digest), timeout=60)
        assert _Liar.gets == 2  # nothing was stored: the second pull went upstream again
    finally:
        liar.shutdown()


def _counter(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        found = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if found and all(f'{k}="{v}"' in found.group(1) for k, v in labels.items()):
            total += float(found.group(2))
    return total


def test_metrics_count_hits_misses_stale_answers_and_upstream_errors(world: World) -> None:
    repo, tag, image = _pushed_image(world)
    cached, layer = f"{HUB}/{repo}", image.blobs[-1]
    before = metrics_text(world.cache)

    assert _get_manifest(world.cache, cached, tag).status_code == 200  # miss
    assert _get_blob(world.cache, cached, layer.digest).status_code == 200  # miss
    assert _get_blob(world.cache, cached, layer.digest).status_code == 200  # hit
    assert _get_manifest(world.cache, cached, image.digest).status_code == 200  # hit
    world.proxy.status = 503
    assert "Warning" in _get_manifest(world.cache, cached, tag).headers  # stale

    after = metrics_text(world.cache)
    name = "moorage_cache_requests_total"
    for result, n in (("hit", 2), ("miss", 2), ("stale", 1)):
        assert _counter(after, name, cache="hub", result=result) \
            - _counter(before, name, cache="hub", result=result) == n, result
    errors = "moorage_upstream_errors_total"
    assert _counter(after, errors, cache="hub", status="503") \
        > _counter(before, errors, cache="hub", status="503")


def _tags(reg: Server, repo: str, **params: str) -> requests.Response:
    return requests.get(f"{reg.url}/v2/{repo}/tags/list", params=params, timeout=60)


def test_tags_list_is_the_upstreams_kept_for_revalidate_and_stored_on_an_outage(
        world: World) -> None:
    repo, tag, _ = _pushed_image(world)
    push_tree(world.upstream, repo, make_image(), tag="other")
    lists = f"/v2/{repo}/tags/list"

    r = _tags(world.cache, f"{SLOW}/{repo}")  # nothing pulled yet: the upstream's whole list
    assert r.status_code == 200
    assert r.json() == {"name": f"{SLOW}/{repo}", "tags": sorted([tag, "other"])}
    first = _tags(world.cache, f"{SLOW}/{repo}", n="1")
    assert first.json()["tags"] == [min(tag, "other")] and "Link" in first.headers
    push_tree(world.upstream, repo, make_image(), tag="newer")
    assert "newer" not in _tags(world.cache, f"{SLOW}/{repo}").json()["tags"]  # kept 1 h
    assert world.proxy.count("GET", lists) == 1

    assert "newer" in _tags(world.cache, f"{HUB}/{repo}").json()["tags"]  # revalidate 0
    assert _get_manifest(world.cache, f"{HUB}/{repo}", tag).status_code == 200
    world.proxy.status = 503
    r = _tags(world.cache, f"{HUB}/{repo}")
    assert r.status_code == 200 and r.json()["tags"] == [tag]  # what the cache stores
    world.proxy.heal()
    assert_error(_tags(world.cache, f"{HUB}/{new_repo('lib')}"), 404, "NAME_UNKNOWN")


def test_stored_tags_served_on_an_outage_carry_the_stale_warning_and_are_counted(
        world: World) -> None:
    repo, tag, _ = _pushed_image(world)
    cached = f"{HUB}/{repo}"
    fresh = _tags(world.cache, cached)
    assert fresh.status_code == 200 and "Warning" not in fresh.headers
    assert _get_manifest(world.cache, cached, tag).status_code == 200  # the tag is stored
    before = metrics_text(world.cache)
    world.proxy.status = 503

    r = _tags(world.cache, cached)

    assert r.status_code == 200 and r.json()["tags"] == [tag]
    assert r.headers["Warning"] == '110 - "stale: upstream unavailable"'
    after = metrics_text(world.cache)
    name = "moorage_cache_requests_total"
    assert _counter(after, name, cache="hub", result="stale") \
        - _counter(before, name, cache="hub", result="stale") == 1
