"""skopeo against a running Moorage: copy in and out, multi-arch with --all, inspect, list-tags,
delete, and a copy between two repositories of the same registry (cross-repo blob mount).

Images are built locally as OCI layouts (see ocikit.py); the registry speaks plain HTTP on
127.0.0.1, hence --dest-tls-verify=false / --src-tls-verify=false / --tls-verify=false.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
from ocikit import (
    OCI_INDEX,
    OCI_MANIFEST,
    OciLayout,
    assert_blob_served,
    assert_manifest_served,
    describe,
    get_blob,
    get_manifest,
    layout_blob,
    make_image,
    make_multiarch,
    new_repo,
    read_layout,
    require_binary,
    run,
    sha256_digest,
)
from support.http import http
from support.oci import DOCKER_MANIFEST

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def skopeo_bin() -> str:
    return require_binary("skopeo")


def skopeo(*args: str, check: bool = True):
    # --insecure-policy: accept any image whatever /etc/containers/policy.json says.
    return run(["skopeo", "--insecure-policy", *args], check=check)


def push(layout: OciLayout, tag: str, dest: str, *extra: str):
    return skopeo("copy", "--dest-tls-verify=false", *extra, layout.ref(tag), dest)


def inspect_raw(ref: str, *extra: str) -> bytes:
    res = run(["skopeo", "inspect", "--tls-verify=false", "--raw", *extra, ref])
    return res.stdout.encode()


def inspect(ref: str, *extra: str) -> dict:
    return json.loads(skopeo("inspect", "--tls-verify=false", *extra, ref).stdout)


# ----------------------------------------------------------------------------------------------


def test_skopeo_copy_round_trip_keeps_digests(skopeo_bin, registry, tmp_path: Path):
    """oci layout -> registry -> oci layout and dir: manifest, config and layers byte-identical."""
    repo = new_repo("skopeo")
    src = OciLayout(tmp_path / "src")
    # a second layer of 2 MiB random bytes so the push moves more than a trivial amount
    image = src.add_image("v1", make_image(extra_layer_bytes=2 * 1024 * 1024))
    ref = f"docker://{registry.host}/{repo}:v1"

    push(src, "v1", ref)

    raw = inspect_raw(ref)
    assert sha256_digest(raw) == image.digest, "manifest digest changed on the way in"
    assert raw == image.manifest.data
    info = inspect(ref)
    assert info["Digest"] == image.digest, info
    assert info["Layers"] == [layer.digest for layer in image.layers], info
    assert info["Architecture"] == "amd64" and info["Os"] == "linux", info
    assert info["Labels"] == json.loads(image.config.data)["config"]["Labels"], info
    config_raw = skopeo("inspect", "--tls-verify=false", "--config", "--raw", ref).stdout
    assert config_raw.encode() == image.config.data, "config bytes changed on the way in"

    # what skopeo sees is what the HTTP API serves
    assert_manifest_served(registry, repo, "v1", image.manifest.data)
    r = get_manifest(registry, repo, "v1")
    assert r.headers.get("Content-Type") == OCI_MANIFEST, describe(r)
    for blob in image.blobs:
        assert_blob_served(registry, repo, blob.digest, blob.data)

    # registry -> another OCI layout
    out = tmp_path / "out-oci"
    skopeo("copy", "--src-tls-verify=false", ref, f"oci:{out}:copied")
    desc = read_layout(out)["copied"]
    assert desc["digest"] == image.digest, desc
    assert layout_blob(out, image.digest) == image.manifest.data
    for blob in image.blobs:
        assert layout_blob(out, blob.digest) == blob.data, f"blob {blob.digest} differs"

    # registry (by digest this time) -> dir: transport
    out_dir = tmp_path / "out-dir"
    skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{registry.host}/{repo}@{image.digest}",
        f"dir:{out_dir}",
    )
    manifest_json = (out_dir / "manifest.json").read_bytes()
    assert sha256_digest(manifest_json) == image.digest
    for blob in image.blobs:
        assert (out_dir / blob.digest.split(":", 1)[1]).read_bytes() == blob.data


def test_skopeo_copy_converted_to_docker_schema2(skopeo_bin, registry, tmp_path: Path):
    """--format v2s2: skopeo converts the OCI image to a Docker schema 2 manifest on the way in;
    the registry keeps and serves it with its Docker media type and digest."""
    repo = new_repo("v2s2")
    src = OciLayout(tmp_path / "src")
    image = src.add_image("v1", make_image())
    ref = f"docker://{registry.host}/{repo}:v1"
    push(src, "v1", ref, "--format", "v2s2")

    raw = inspect_raw(ref)
    manifest = json.loads(raw)
    assert manifest["mediaType"] == DOCKER_MANIFEST, manifest
    assert [layer["digest"] for layer in manifest["layers"]] == [b.digest for b in image.layers]
    info = inspect(ref)
    assert info["Digest"] == sha256_digest(raw), info
    r = get_manifest(registry, repo, "v1")
    assert r.status_code == 200, describe(r)
    assert r.headers.get("Content-Type") == DOCKER_MANIFEST, describe(r)
    assert r.headers.get("Docker-Content-Digest") == sha256_digest(raw), describe(r)
    assert r.content == raw
    config = get_blob(registry, repo, manifest["config"]["digest"])
    assert config.status_code == 200, describe(config)
    assert sha256_digest(config.content) == manifest["config"]["digest"]
    assert json.loads(config.content)["rootfs"]["diff_ids"] == image.diff_ids

    out_dir = tmp_path / "out-dir"
    skopeo("copy", "--src-tls-verify=false", ref, f"dir:{out_dir}")
    assert (out_dir / "manifest.json").read_bytes() == raw


def test_skopeo_copy_all_multiarch_index(skopeo_bin, registry, tmp_path: Path):
    """--all pushes the index and both platform manifests; each is served by digest."""
    repo = new_repo("multi")
    src = OciLayout(tmp_path / "src")
    multi = src.add_multiarch("multi", make_multiarch())
    ref = f"docker://{registry.host}/{repo}:multi"

    push(src, "multi", ref, "--all")

    raw = inspect_raw(ref)
    assert sha256_digest(raw) == multi.digest, "index digest changed on the way in"
    r = get_manifest(registry, repo, "multi")
    assert r.status_code == 200, describe(r)
    assert r.headers.get("Content-Type") == OCI_INDEX, describe(r)
    assert r.headers.get("Docker-Content-Digest") == multi.digest, describe(r)
    for img in multi.images:
        assert_manifest_served(registry, repo, img.digest, img.manifest.data)
        r = get_manifest(registry, repo, img.digest)
        assert r.headers.get("Content-Type") == OCI_MANIFEST, describe(r)
        for blob in img.blobs:
            assert_blob_served(registry, repo, blob.digest, blob.data)

    # skopeo resolves the platform through the index
    for arch in ("amd64", "arm64"):
        info = inspect(ref, "--override-arch", arch, "--override-os", "linux")
        assert info["Architecture"] == arch, info
        assert info["Layers"] == [layer.digest for layer in multi.by_arch(arch).layers], info
        raw_child = inspect_raw(f"docker://{registry.host}/{repo}@{multi.by_arch(arch).digest}")
        assert raw_child == multi.by_arch(arch).manifest.data

    # and back out with --all: every manifest and blob round-trips byte for byte
    out = tmp_path / "out"
    skopeo("copy", "--all", "--src-tls-verify=false", ref, f"oci:{out}:multi")
    assert read_layout(out)["multi"]["digest"] == multi.digest
    assert layout_blob(out, multi.digest) == multi.index.data
    for img in multi.images:
        assert layout_blob(out, img.digest) == img.manifest.data
        for blob in img.blobs:
            assert layout_blob(out, blob.digest) == blob.data


def test_skopeo_list_tags(skopeo_bin, registry, tmp_path: Path):
    repo = new_repo("tags")
    src = OciLayout(tmp_path / "src")
    src.add_image("v1", make_image())
    tags = ["v1", "v1.0.0", "latest", "stable-2024"]
    for tag in tags:
        push(src, "v1", f"docker://{registry.host}/{repo}:{tag}")

    listed = json.loads(
        skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/{repo}").stdout
    )
    assert listed["Repository"] == f"{registry.host}/{repo}", listed
    assert sorted(listed["Tags"]) == sorted(tags), listed
    r = http.get(f"{registry.url}/v2/{repo}/tags/list")
    assert r.status_code == 200, describe(r)
    body = r.json()
    assert body["name"] == repo and sorted(body["tags"]) == sorted(tags), describe(r)


def test_skopeo_delete(skopeo_bin, registry, tmp_path: Path):
    """skopeo delete by tag removes the manifest (inspect then fails); by digest as well."""
    repo = new_repo("delete")
    src = OciLayout(tmp_path / "src")
    first = src.add_image("first", make_image())
    second = src.add_image("second", make_image())
    ref1 = f"docker://{registry.host}/{repo}:first"
    ref2 = f"docker://{registry.host}/{repo}:second"
    push(src, "first", ref1)
    push(src, "second", ref2)
    assert inspect(ref1)["Digest"] == first.digest

    # by tag: skopeo resolves the tag and DELETEs /v2/<name>/manifests/<digest>
    skopeo("delete", "--tls-verify=false", ref1)
    res = skopeo("inspect", "--tls-verify=false", ref1, check=False)
    assert res.returncode != 0, f"inspect of a deleted image succeeded:\n{res.describe()}"
    assert "manifest unknown" in res.stderr.lower() or "not found" in res.stderr.lower(), (
        res.describe()
    )
    r = get_manifest(registry, repo, first.digest)
    assert r.status_code == 404, describe(r)
    r = get_manifest(registry, repo, "first")
    assert r.status_code == 404, describe(r)

    # the other image is untouched
    assert inspect(ref2)["Digest"] == second.digest
    assert_manifest_served(registry, repo, "second", second.manifest.data)

    # by digest
    by_digest = f"docker://{registry.host}/{repo}@{second.digest}"
    skopeo("delete", "--tls-verify=false", by_digest)
    res = skopeo("inspect", "--tls-verify=false", by_digest, check=False)
    assert res.returncode != 0, f"inspect of a deleted image succeeded:\n{res.describe()}"
    r = get_manifest(registry, repo, second.digest)
    assert r.status_code == 404, describe(r)
    r = http.get(f"{registry.url}/v2/{repo}/tags/list")
    if r.status_code == 200:
        assert not (r.json().get("tags") or []), describe(r)
    else:
        assert r.status_code == 404, describe(r)


def test_skopeo_copy_between_repositories_mounts_blobs(skopeo_bin, registry, tmp_path: Path):
    """docker://reg/a -> docker://reg/b: skopeo asks for a cross-repo mount of every layer
    (POST ...?mount=<digest>&from=a); the registry grants it (201) so no blob is re-uploaded,
    and b serves the same manifest and blobs."""
    repo_a = new_repo("mount-a")
    repo_b = new_repo("mount-b")
    src = OciLayout(tmp_path / "src")
    image = src.add_image("v1", make_image(extra_layer_bytes=512 * 1024))
    push(src, "v1", f"docker://{registry.host}/{repo_a}:v1")

    res = skopeo(
        "--debug",
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{registry.host}/{repo_a}:v1",
        f"docker://{registry.host}/{repo_b}:v1",
    )
    log = res.stderr + res.stdout
    assert sha256_digest(inspect_raw(f"docker://{registry.host}/{repo_b}:v1")) == image.digest
    assert_manifest_served(registry, repo_b, "v1", image.manifest.data)
    for blob in image.blobs:
        assert_blob_served(registry, repo_b, blob.digest, blob.data)
    # the source is untouched
    assert_manifest_served(registry, repo_a, "v1", image.manifest.data)

    # the client tried the mount path for every layer and did not upload any layer again
    # (c/image never mounts the config: it always uploads it, so it is not checked)
    for layer in image.layers:
        hexd = layer.digest.split(":", 1)[1]
        mount = re.search(
            rf"POST \S*/v2/{re.escape(repo_b)}/blobs/uploads/\?\S*mount=sha256%3A{hexd}", log
        )
        assert mount, f"skopeo did not attempt a cross-repo mount of {layer.digest}:\n{log[-6000:]}"
        upload = re.search(
            rf"PUT \S*/v2/{re.escape(repo_b)}/blobs/uploads/\S*digest=sha256%3A{hexd}", log
        )
        assert not upload, (
            f"cross-repo mount of {layer.digest} was not granted, skopeo re-uploaded it:\n"
            f"{log[-6000:]}"
        )

    # mounting by hand: 201 Created with the blob's Location and digest
    blob = image.layers[0]
    repo_c = new_repo("mount-c")
    r = requests.post(
        f"{registry.url}/v2/{repo_c}/blobs/uploads/",
        params={"mount": blob.digest, "from": repo_a},
        headers={"Content-Length": "0"},
        timeout=30,
        allow_redirects=False,
    )
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == blob.digest, describe(r)
    h = http.head(f"{registry.url}/v2/{repo_c}/blobs/{blob.digest}")
    assert h.status_code == 200 and h.headers.get("Content-Length") == str(len(blob.data)), (
        describe(h)
    )
