"""Several nodes on different ports sharing one PostgreSQL database and one SeaweedFS bucket
prefix: any node takes any request, concurrent pushes have one winner, a killed node loses
nothing that was acknowledged, and real clients work through a node."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy import text
from support.backends import migrate, services_or_skip
from support.servers import RegistryProcess, free_port, run_moorage, start_local

MiB = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
T = 60


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Cluster:
    """Nodes that share one database and one bucket prefix."""

    def __init__(self, services, tmp_path: Path, count: int, **env: str) -> None:
        self.services = services
        self.database_url = services.pg.create_database()
        migrate(self.database_url)
        self.storage_url = services.s3.storage_url()
        self.env = {**services.s3.env(), "MOORAGE_UPLOAD_LEASE_SECONDS": "3", **env}
        self.nodes = [self.add(tmp_path / f"node{i}") for i in range(count)]

    def add(self, data_dir: Path, **env: str) -> RegistryProcess:
        return start_local(data_dir, "--workers", "1", "--database", self.database_url,
                           "--storage", self.storage_url, **{**self.env, **env})

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def sql(self, query: str, **params):  # type: ignore[no-untyped-def]
        from moorage.metadata.engine import make_engine

        engine = make_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return conn.execute(text(query), params).all()
        finally:
            engine.dispose()

    def s3(self):  # type: ignore[no-untyped-def]
        from moorage.storage.s3 import S3BlobStore, S3Config

        return S3BlobStore(S3Config.from_url(self.storage_url, env=self.services.s3.env()))


@pytest.fixture(scope="module")
def services():
    return services_or_skip()


# Below the 64 MiB default, so the multi-megabyte blobs of these tests take the redirect path.
REDIRECT_MIN = 4 * MiB


@pytest.fixture(scope="module")
def cluster(services, tmp_path_factory):
    c = Cluster(services, tmp_path_factory.mktemp("cluster"), 3,
                MOORAGE_BLOB_REDIRECT_MIN_BYTES=str(REDIRECT_MIN))
    yield c
    c.stop()


def post_upload(node: RegistryProcess, repo: str) -> str:
    r = requests.post(f"{node.url}/v2/{repo}/blobs/uploads/", timeout=T)
    assert r.status_code == 202, r.text
    return r.headers["Location"]


def patch(node: RegistryProcess, location: str, data: bytes, start: int) -> requests.Response:
    return requests.patch(
        node.url + location, data=data, timeout=T,
        headers={"Content-Range": f"{start}-{start + len(data) - 1}",
                 "Content-Type": "application/octet-stream"},
    )


def push_blob(node: RegistryProcess, repo: str, data: bytes) -> requests.Response:
    location = post_upload(node, repo)
    return requests.put(f"{node.url}{location}?digest={digest_of(data)}", data=data, timeout=T)


def push_manifest(node: RegistryProcess, repo: str, tag: str, blobs: list[bytes]) -> bytes:
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": uuid.uuid4().hex}).encode()
    assert push_blob(node, repo, config).status_code == 201
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(b), "size": len(b)}
                   for b in blobs],
    }).encode()
    r = requests.put(f"{node.url}/v2/{repo}/manifests/{tag}", data=manifest, timeout=T,
                     headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    return manifest


def test_chunked_upload_started_on_one_node_continues_and_completes_on_others(cluster):
    a, b, c = cluster.nodes
    repo = f"scale/{uuid.uuid4().hex[:8]}"
    chunks = [os.urandom(n) for n in (6 * MiB, 1 * MiB + 7, 7 * MiB, 100, 2 * MiB)]
    location = post_upload(a, repo)
    offset = 0
    for i, chunk in enumerate(chunks[:-1]):
        node = (b, c, a, b)[i]
        r = patch(node, location, chunk, offset)
        assert r.status_code == 202, r.text
        offset += len(chunk)
        assert r.headers["Range"] == f"0-{offset - 1}"
        status = requests.get(cluster.nodes[(i + 1) % 3].url + location, timeout=T)
        assert status.status_code == 204 and status.headers["Range"] == f"0-{offset - 1}"
    data = b"".join(chunks)
    last = chunks[-1]
    r = requests.put(
        f"{c.url}{location}?digest={digest_of(data)}", data=last, timeout=T,
        headers={"Content-Range": f"{offset}-{offset + len(last) - 1}"},
    )
    assert r.status_code == 201, r.text
    for node in cluster.nodes:
        got = requests.get(f"{node.url}/v2/{repo}/blobs/{digest_of(data)}", timeout=T)
        assert got.status_code == 200 and got.content == data
    # Committing completed the multipart upload in place: nothing left in progress.
    assert [u for u in cluster.s3().list_multipart_uploads() if u[0].startswith("blobs/")] == []


def test_concurrent_pushes_of_one_blob_and_one_tag_from_different_nodes(cluster):
    repo = f"scale/{uuid.uuid4().hex[:8]}"
    layer = os.urandom(9 * MiB)  # a multipart blob
    results: list = [None] * 6
    manifests: list = [None] * 6

    def push(i: int) -> None:
        node = cluster.nodes[i % 3]
        results[i] = push_blob(node, repo, layer).status_code
        manifests[i] = push_manifest(node, repo, "latest", [layer])

    threads = [threading.Thread(target=push, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == [201] * 6
    # One blob row, one object for it, one tag row; every node agrees on what the tag is.
    rows = cluster.sql("SELECT storage_key FROM blobs WHERE digest = :d", d=digest_of(layer))
    assert len(rows) == 1
    assert cluster.sql(
        "SELECT count(*) FROM tags t JOIN repositories r ON r.id = t.repository_id "
        "WHERE r.name = :n", n=repo) == [(1,)]
    served = {requests.get(f"{n.url}/v2/{repo}/manifests/latest", timeout=T,
                           headers={"Accept": OCI_MANIFEST}).content for n in cluster.nodes}
    assert len(served) == 1 and served.pop() in manifests
    for node in cluster.nodes:
        got = requests.get(f"{node.url}/v2/{repo}/blobs/{digest_of(layer)}", timeout=T)
        assert got.content == layer
    # The losers' copies were dropped: every object under blobs/ is some blob's key.
    import obstore

    s3 = cluster.s3()
    keys = {m["path"] for batch in obstore.list(s3.obj, prefix="blobs/") for m in batch}
    recorded = {k for (k,) in cluster.sql("SELECT storage_key FROM blobs")}
    assert keys == recorded


def test_kill_9_mid_upload_then_finish_on_another_node(services, tmp_path):
    cluster = Cluster(services, tmp_path, 2)
    try:
        a, b = cluster.nodes
        repo = f"scale/{uuid.uuid4().hex[:8]}"
        first, rest = os.urandom(6 * MiB), os.urandom(20 * MiB)
        location = post_upload(a, repo)
        assert patch(a, location, first, 0).status_code == 202

        sent = threading.Event()

        def slow_body():
            for i in range(0, len(rest), MiB):
                yield rest[i : i + MiB]
                if i >= 12 * MiB:
                    sent.set()
                    time.sleep(0.5)

        def doomed() -> None:
            try:
                requests.patch(a.url + location, data=slow_body(), timeout=T,
                               headers={"Content-Type": "application/octet-stream"})
            except requests.RequestException:
                pass

        t = threading.Thread(target=doomed)
        t.start()
        assert sent.wait(30)
        a.kill()  # kill -9 the whole node mid-request
        t.join(30)
        # The other node reports the acknowledged offset and takes the rest once the dead
        # writer's lease (3 s here) runs out.
        status = requests.get(b.url + location, timeout=T)
        assert status.status_code == 204 and status.headers["Range"] == f"0-{len(first) - 1}"
        deadline = time.monotonic() + 30
        while True:
            r = patch(b, location, rest, len(first))
            if r.status_code != 416 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert r.status_code == 202, r.text
        data = first + rest
        r = requests.put(f"{b.url}{location}?digest={digest_of(data)}", timeout=T)
        assert r.status_code == 201, r.text
        assert requests.get(f"{b.url}/v2/{repo}/blobs/{digest_of(data)}", timeout=T).content == data
    finally:
        cluster.stop()


def test_large_blob_pull_redirects_with_digest_on_the_307_and_ranges_at_the_store(cluster):
    a = cluster.nodes[0]
    repo = f"scale/{uuid.uuid4().hex[:8]}"
    data = os.urandom(REDIRECT_MIN + 5)
    assert push_blob(a, repo, data).status_code == 201
    url = f"{a.url}/v2/{repo}/blobs/{digest_of(data)}"
    r = requests.get(url, allow_redirects=False, timeout=T)
    assert r.status_code == 307 and "X-Amz-Signature" in r.headers["Location"]
    assert r.headers["Docker-Content-Digest"] == digest_of(data)
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Length"] == "0" and r.content == b""
    # What a client sees after following it: the store's answer, without the digest header.
    followed = requests.get(url, timeout=T)
    assert followed.status_code == 200 and followed.content == data
    assert "Docker-Content-Digest" not in followed.headers
    ranged = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=T)
    assert ranged.status_code == 206 and ranged.content == data[100:200]
    assert requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=T).status_code == 416
    head = requests.head(url, timeout=T)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest_of(data)


def test_blob_below_the_threshold_is_proxied_with_digest_header(cluster):
    a = cluster.nodes[0]
    repo = f"scale/{uuid.uuid4().hex[:8]}"
    data = os.urandom(REDIRECT_MIN - 1)
    assert push_blob(a, repo, data).status_code == 201
    url = f"{a.url}/v2/{repo}/blobs/{digest_of(data)}"
    r = requests.get(url, allow_redirects=False, timeout=T)
    assert r.status_code == 200 and r.content == data
    assert r.headers["Docker-Content-Digest"] == digest_of(data)
    assert r.headers["Content-Length"] == str(len(data))


def test_redirect_modes_never_always_and_the_old_boolean(cluster, tmp_path):
    a = cluster.nodes[0]
    repo = f"scale/{uuid.uuid4().hex[:8]}"
    small, large = os.urandom(1000), os.urandom(REDIRECT_MIN + 1)
    for blob in (small, large):
        assert push_blob(a, repo, blob).status_code == 201
    # mode -> which of (small, large) a GET answers with a 307
    expected = {"never": (False, False), "0": (False, False), "always": (True, True),
                "1": (False, True)}
    for mode, redirects in expected.items():
        node = cluster.add(tmp_path / f"mode-{mode}", MOORAGE_BLOB_REDIRECT=mode)
        try:
            for blob, redirected in zip((small, large), redirects, strict=True):
                url = f"{node.url}/v2/{repo}/blobs/{digest_of(blob)}"
                r = requests.get(url, allow_redirects=False, timeout=T)
                assert r.headers["Docker-Content-Digest"] == digest_of(blob), (mode, len(blob))
                if redirected:
                    assert r.status_code == 307, (mode, len(blob), r.status_code)
                    assert requests.get(url, timeout=T).content == blob
                else:
                    assert r.status_code == 200 and r.content == blob, (mode, len(blob))
                    tail = requests.get(url, headers={"Range": "bytes=-10"}, timeout=T)
                    assert tail.status_code == 206 and tail.content == blob[-10:]
        finally:
            node.stop()


def test_health_endpoints_and_unmigrated_database(cluster, services, tmp_path):
    node = cluster.nodes[0]
    assert requests.get(f"{node.url}/healthz", timeout=T).status_code == 200
    ready = requests.get(f"{node.url}/readyz", timeout=T)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "storage": "ok"}
    empty = services.pg.create_database()
    proc = run_moorage(
        "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d"),
        "--database", empty, "--storage", services.s3.storage_url(),
        check=False, env=services.s3.env(),
    )
    assert proc.returncode != 0
    assert "moorage db upgrade" in proc.stderr


def test_gc_expires_a_stale_upload_and_aborts_its_multipart_upload(cluster, services, tmp_path):
    a = cluster.nodes[0]
    repo = f"scale/{uuid.uuid4().hex[:8]}"
    location = post_upload(a, repo)
    upload_id = location.rsplit("/", 1)[1]
    assert patch(a, location, os.urandom(6 * MiB), 0).status_code == 202
    s3 = cluster.s3()
    assert any(k == f"blobs/{upload_id}" for k, _, _ in s3.list_multipart_uploads())
    time.sleep(1.1)
    proc = subprocess.run(
        [sys.executable, "-m", "moorage", "gc", "--upload-ttl", "1s", "--json",
         "--data-dir", str(tmp_path / "d"), "--database", cluster.database_url,
         "--storage", cluster.storage_url],
        check=False, capture_output=True, text=True, timeout=120,
        env={**os.environ, **services.s3.env()},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["uploads"] >= 1
    assert not any(k == f"blobs/{upload_id}" for k, _, _ in s3.list_multipart_uploads())
    assert requests.get(a.url + location, timeout=T).status_code == 404


@pytest.mark.clients
def test_skopeo_copies_through_one_node_and_back_from_another(cluster, tmp_path):
    import shutil

    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    from clients.ocikit import OciLayout, make_image

    layout = OciLayout(tmp_path / "src")
    image = layout.add_image("v1", make_image(extra_layer_bytes=12 * MiB))
    a, b = cluster.nodes[0], cluster.nodes[1]
    repo = f"scale/skopeo-{uuid.uuid4().hex[:8]}"
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                    layout.ref("v1"), f"docker://{a.host}/{repo}:v1"],
                   check=True, capture_output=True, timeout=300)
    # The 12 MiB layer is above the cluster's threshold: skopeo pulls it through a 307.
    large = [blob for blob in image.blobs if len(blob.data) >= REDIRECT_MIN]
    assert large, "the image has no layer above the redirect threshold"
    for blob in large:
        r = requests.get(f"{b.url}/v2/{repo}/blobs/{blob.digest}", allow_redirects=False,
                         timeout=T)
        assert r.status_code == 307, r.status_code
    out = tmp_path / "out"
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
                    f"docker://{b.host}/{repo}:v1", f"oci:{out}:v1"],
                   check=True, capture_output=True, timeout=300)
    for blob in image.blobs:
        path = out / "blobs" / "sha256" / blob.digest.split(":", 1)[1]
        assert path.read_bytes() == blob.data
