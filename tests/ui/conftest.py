"""A populated auth-enabled registry for the UI tests: a public namespace with a multi-arch
image (an index of two images with configs), a referrer, an immutable and a soft-deleted tag;
a private namespace with an image; a user with no role anywhere; a robot."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from support.http import call
from support.oci import (
    OCI_CONFIG,
    Blob,
    Manifest,
    image_config,
    make_artifact,
    make_image,
    make_index,
    manifest_url,
    push_tree,
)
from support.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, running_provider
from support.servers import Server, start_registry

ADMIN_PASSWORD = "ui-admin-" + uuid.uuid4().hex[:8]
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
ARTIFACTS = Path(__file__).parent / "artifacts"


@dataclass
class _Creds:
    """A stand-in for a server whose URL carries credentials (requests sends them as Basic)."""

    url: str


@dataclass
class World:
    server: Server
    public_repo: str
    index: Manifest
    referrer: Manifest
    private_ns: str
    private_repo: str
    outsider: tuple[str, str]
    robot: tuple[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def admin(self) -> tuple[str, str]:
        return ("admin", ADMIN_PASSWORD)


def _api(world_url: str, method: str, path: str, **kw) -> requests.Response:  # type: ignore[no-untyped-def]
    r = call(method, f"{world_url}/api/v1{path}", auth=("admin", ADMIN_PASSWORD), **kw)
    assert r.status_code < 300, (method, path, r.status_code, r.text)
    return r


def _image(arch: str) -> Manifest:
    config = image_config(architecture=arch, config={
        "Env": ["PATH=/usr/bin", f"ARCH_NAME={arch}"], "Entrypoint": ["/bin/app"],
        "Labels": {"org.opencontainers.image.title": "ui-test"}},
        history=[{"created_by": "ADD rootfs.tar /"}, {"created_by": "CMD /bin/app"}])
    return make_image(layers=2, config=Blob(config, OCI_CONFIG))


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("ui")
    server = start_registry(tmp, "--workers", "1", auth=True,
                            MOORAGE_ADMIN_PASSWORD=ADMIN_PASSWORD)
    try:
        uid = uuid.uuid4().hex[:8]
        public_ns, private_ns = f"pub{uid}", f"zqhidden{uid}"
        _api(server.url, "POST", "/namespaces", json={"name": public_ns, "visibility": "public"})
        _api(server.url, "POST", "/namespaces", json={"name": private_ns})
        _api(server.url, "POST", f"/namespaces/{public_ns}/immutability", json={"pattern": "1.*"})
        outsider = (f"eve{uid}", "pw-" + uuid.uuid4().hex)
        _api(server.url, "POST", "/users", json={"name": outsider[0], "password": outsider[1]})
        robot = _api(server.url, "POST", "/robots", json={
            "name": f"ci{uid}", "permissions": {public_ns: ["pull"]}}).json()

        pusher = _Creds(re.sub(r"^http://", f"http://admin:{ADMIN_PASSWORD}@", server.url))
        public_repo = f"{public_ns}/app"
        index = make_index([_image("amd64"), _image("arm64")])
        push_tree(pusher, public_repo, index, tag="1.2.0")
        push_tree(pusher, public_repo, index, tag="1.10.0")
        push_tree(pusher, public_repo, index, tag="latest")
        push_tree(pusher, public_repo, index, tag="old")
        r = call("DELETE", manifest_url(server, public_repo, "old"), auth=("admin", ADMIN_PASSWORD))
        assert r.status_code == 202, r.text
        referrer = make_artifact(artifact_type=SIGNATURE_TYPE, subject=index)
        push_tree(pusher, public_repo, referrer)
        private_repo = f"{private_ns}/secretapp"
        push_tree(pusher, private_repo, make_image(layers=1), tag="v1")
        yield World(server, public_repo, index, referrer, private_ns, private_repo, outsider,
                    (robot["name"], robot["secret"]))
    finally:
        server.stop()


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    """Where a test saves screenshots (copied to tests/ui/artifacts/, git-ignored)."""
    yield tmp_path
    ARTIFACTS.mkdir(exist_ok=True)
    for png in tmp_path.glob("*.png"):
        (ARTIFACTS / png.name).write_bytes(png.read_bytes())


FAST_JOBS = {"MOORAGE_JOB_POLL_INTERVAL": "0.1", "MOORAGE_EVENTS_POLL_INTERVAL": "0.1",
             "MOORAGE_GC_INTERVAL": "0", "MOORAGE_UPLOAD_EXPIRY_INTERVAL": "0",
             "MOORAGE_SBOM_ON_PUSH": "0"}


@dataclass
class Quiet:
    """A second registry computing nothing on push (insights are queued from the UI), with a
    namespace `ns`, its developer `dev` and reader `reader` (user, password), and single sign-on
    with the test OIDC `provider` (members of ADMIN_GROUP are server admins)."""

    server: Server
    ns: str
    dev: tuple[str, str]
    reader: tuple[str, str]
    provider: Provider

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, method: str, path: str, **kw) -> requests.Response:  # type: ignore[no-untyped-def]
        return _api(self.url, method, path, **kw)

    def push(self, repo: str, image: Manifest, tag: str) -> str:
        """Push `image` as admin; its digest."""
        pusher = _Creds(re.sub(r"^http://", f"http://admin:{ADMIN_PASSWORD}@", self.url))
        return push_tree(pusher, repo, image, tag=tag)


ADMIN_GROUP = "registry-admins"


@pytest.fixture(scope="session")
def provider() -> Iterator[Provider]:
    with running_provider() as p:
        yield p


@pytest.fixture(scope="session")
def quiet(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Quiet]:
    server = start_registry(tmp_path_factory.mktemp("ui-quiet"), "--workers", "1", auth=True,
                            MOORAGE_ADMIN_PASSWORD=ADMIN_PASSWORD,
                            MOORAGE_INSIGHTS_ON_PUSH="0", MOORAGE_UI_OIDC_ISSUER=provider.url,
                            MOORAGE_UI_OIDC_CLIENT_ID=CLIENT_ID,
                            MOORAGE_UI_OIDC_CLIENT_SECRET=CLIENT_SECRET,
                            MOORAGE_UI_OIDC_ADMIN_GROUP=ADMIN_GROUP, **FAST_JOBS)
    try:
        uid = uuid.uuid4().hex[:8]
        ns = f"team{uid}"
        _api(server.url, "POST", "/namespaces", json={"name": ns})
        dev, reader = (f"dev{uid}", "pw-" + uuid.uuid4().hex), (f"rd{uid}", "pw-" + uuid.uuid4().hex)
        for user, role in ((dev, "developer"), (reader, "reader")):
            _api(server.url, "POST", "/users", json={"name": user[0], "password": user[1]})
            _api(server.url, "PUT", f"/namespaces/{ns}/members/{user[0]}", json={"role": role})
        yield Quiet(server, ns, dev, reader, provider)
    finally:
        server.stop()
