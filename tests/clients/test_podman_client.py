"""podman against a running Moorage: pull the image skopeo pushed, push it under a new name.

podman runs as root with its own throw-away storage (--root/--runroot under tmp_path, the `vfs`
driver, cgroupfs, file events) so nothing on the machine is touched; the test is skipped, with
the reason, when podman is missing or cannot even list images in this sandbox.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from ocikit import (
    OciLayout,
    assert_manifest_served,
    describe,
    get_blob,
    get_manifest,
    make_image,
    new_repo,
    podman_cli,
    require_binary,
    run,
    sha256_digest,
)

pytestmark = pytest.mark.clients


@pytest.fixture
def podman(tmp_path: Path):
    with podman_cli(tmp_path) as call:
        yield call


def test_podman_pull_and_push(podman, registry, tmp_path: Path):
    require_binary("skopeo")
    repo = new_repo("podman")
    repo2 = new_repo("podman-pushed")
    src = OciLayout(tmp_path / "src")
    image = src.add_image("v1", make_image(extra_layer_bytes=256 * 1024))
    run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            src.ref("v1"),
            f"docker://{registry.host}/{repo}:v1",
        ]
    )

    # pull: the image ID is the config digest, the repo digest is the manifest digest
    name = f"{registry.host}/{repo}:v1"
    podman("pull", "--tls-verify=false", name)
    info = json.loads(podman("image", "inspect", name).stdout)[0]
    assert info["Id"] == image.config.digest.split(":", 1)[1], info
    assert info["Digest"] == image.digest, info
    assert f"{registry.host}/{repo}@{image.digest}" in info["RepoDigests"], info
    assert info["RootFS"]["Layers"] == image.diff_ids, info

    # push under a new repository and tag
    digest_file = tmp_path / "pushed.digest"
    dest = f"{registry.host}/{repo2}:pushed"
    podman("push", "--tls-verify=false", "--digestfile", str(digest_file), name, f"docker://{dest}")
    pushed_digest = digest_file.read_text().strip()
    r = get_manifest(registry, repo2, "pushed")
    assert r.status_code == 200, describe(r)
    assert r.headers.get("Docker-Content-Digest") == pushed_digest, describe(r)
    assert sha256_digest(r.content) == pushed_digest
    manifest = json.loads(r.content)

    # podman may re-encode the manifest and recompress layers, but the content must be the same:
    # the same config, and layers that decompress to the original tars
    assert manifest["config"]["digest"] == image.config.digest, manifest
    cfg = get_blob(registry, repo2, image.config.digest)
    assert cfg.status_code == 200 and cfg.content == image.config.data, describe(cfg)
    assert len(manifest["layers"]) == len(image.layers), manifest
    for desc, tar in zip(manifest["layers"], image.layer_tars, strict=True):
        b = get_blob(registry, repo2, desc["digest"])
        assert b.status_code == 200, describe(b)
        assert sha256_digest(b.content) == desc["digest"] and len(b.content) == desc["size"]
        raw = gzip.decompress(b.content) if b.content[:2] == b"\x1f\x8b" else b.content
        assert raw == tar, f"layer {desc['digest']} does not unpack to the original tar"

    # the original is untouched, and the pushed copy pulls back to the same image
    assert_manifest_served(registry, repo, "v1", image.manifest.data)
    podman("rmi", "--force", name, dest, check=False)
    podman("pull", "--tls-verify=false", dest)
    info2 = json.loads(podman("image", "inspect", dest).stdout)[0]
    assert info2["Id"] == info["Id"], info2
    assert info2["Digest"] == pushed_digest, info2
