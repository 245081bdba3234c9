"""containerd's `ctr` against a running Moorage: fetch an image and a multi-arch index (only the
chosen platform's layers move), push what it fetched to another repository, and the token
login of an auth-on registry. containerd runs as the session's own daemon (support/containerd).
`ctr content fetch` is a pull without the unpack: the test images' layers are no rootfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.containerd import Containerd
from support.http import http
from support.oci import (
    OCI_MANIFEST,
    get_manifest,
    make_image,
    make_index,
    new_repo,
    new_tag,
    push_tree,
)
from support.servers import start_registry

pytestmark = pytest.mark.clients


def _ok(p) -> None:  # type: ignore[no-untyped-def]
    assert p.returncode == 0, f"$ {' '.join(p.args)}\n{p.stdout}\n{p.stderr}"


def test_ctr_pulls_an_image_byte_for_byte(containerd: Containerd, registry) -> None:
    repo, tag, image = new_repo("ctr"), new_tag(), make_image(layers=2)
    push_tree(registry, repo, image, tag)
    ref = f"{registry.host}/{repo}:{tag}"
    _ok(containerd.ctr("content", "fetch", "--plain-http", ref))
    listed = containerd.ctr("images", "ls", "-q")
    assert ref in listed.stdout.split()
    for blob in image.blobs:
        assert _content_bytes(containerd, blob.digest) == blob.data


def _content_path(containerd: Containerd, digest: str) -> Path:
    """Where containerd's content store keeps a blob (its files are named by digest)."""
    algo, hexpart = digest.split(":", 1)
    return containerd.base / "root" / "io.containerd.content.v1.content" / "blobs" / algo / hexpart


def _content_bytes(containerd: Containerd, digest: str) -> bytes:
    """A blob from containerd's content store."""
    return _content_path(containerd, digest).read_bytes()


def test_ctr_pulls_only_the_chosen_platform_of_an_index(containerd: Containerd, registry
                                                         ) -> None:
    repo, tag = new_repo("ctr"), new_tag()
    index = make_index([make_image(), make_image()])  # amd64, arm64
    push_tree(registry, repo, index, tag)
    ref = f"{registry.host}/{repo}:{tag}"
    _ok(containerd.ctr("content", "fetch", "--plain-http", "--platform", "linux/amd64", ref))
    amd64, arm64 = index.children
    assert _content_bytes(containerd, amd64.blobs[-1].digest) == amd64.blobs[-1].data
    assert not _content_path(containerd, arm64.blobs[-1].digest).exists()


def test_ctr_pushes_what_it_pulled_to_another_repository(containerd: Containerd, registry
                                                         ) -> None:
    repo, tag, image = new_repo("ctr"), new_tag(), make_image(layers=2)
    push_tree(registry, repo, image, tag)
    source, copy_repo = f"{registry.host}/{repo}:{tag}", new_repo("ctr-copy")
    target = f"{registry.host}/{copy_repo}:{tag}"
    _ok(containerd.ctr("content", "fetch", "--plain-http", source))
    _ok(containerd.ctr("images", "tag", source, target))
    _ok(containerd.ctr("images", "push", "--plain-http", target))
    r = get_manifest(registry, copy_repo, tag)
    assert r.status_code == 200, r.text
    assert r.content == image.body
    for blob in image.blobs:
        r = http.get(f"{registry.url}/v2/{copy_repo}/blobs/{blob.digest}")
        assert r.status_code == 200 and r.content == blob.data


def test_ctr_logs_in_with_a_password_and_is_refused_without(
        containerd: Containerd, tmp_path: Path) -> None:
    password = "pw-" + os.urandom(8).hex()
    reg = start_registry(tmp_path / "auth", auth=True, MOORAGE_ADMIN_PASSWORD=password)
    try:
        repo, tag, image = "library/" + new_repo("ctr"), new_tag(), make_image()
        token = http.get(f"{reg.url}/token", auth=("admin", password),
                         params={"service": "moorage",
                                 "scope": f"repository:{repo}:pull,push"}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        for blob in image.blobs:
            r = http.post(f"{reg.url}/v2/{repo}/blobs/uploads/", params={"digest": blob.digest},
                          data=blob.data, headers=auth)
            assert r.status_code == 201, r.text
        r = http.put(f"{reg.url}/v2/{repo}/manifests/{tag}", data=image.body,
                     headers={**auth, "Content-Type": OCI_MANIFEST})
        assert r.status_code == 201, r.text
        ref = f"{reg.host}/{repo}:{tag}"
        refused = containerd.ctr("content", "fetch", "--plain-http", ref)
        assert refused.returncode != 0
        assert "pull access denied" in refused.stderr, refused.stderr
        _ok(containerd.ctr("content", "fetch", "--plain-http", "--user", f"admin:{password}", ref))
        assert _content_bytes(containerd, image.blobs[-1].digest) == image.blobs[-1].data
    finally:
        reg.stop()
