"""SBOM on push through a real server: each pushed image gets one CycloneDX referrer listing
its packages (purls, layer digests), listed by the referrers API; a repeated push makes no
second one; an image with an uploaded SBOM gets none; an index's image children each get one."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
import time
from collections.abc import Iterator

import pytest
from support.http import http
from support.oci import (
    OCI_LAYER_GZIP,
    Blob,
    Manifest,
    all_referrers,
    blob_url,
    get_manifest,
    make_artifact,
    make_image,
    make_index,
    new_repo,
    new_tag,
    push_blob,
    push_manifest,
    push_tree,
)
from support.servers import Server, run_moorage, start_registry

CYCLONEDX = "application/vnd.cyclonedx+json"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
FAST = {"MOORAGE_SBOM_ON_PUSH": "1", "MOORAGE_JOB_POLL_INTERVAL": "0.1",
        "MOORAGE_EVENTS_POLL_INTERVAL": "0.1", "MOORAGE_JOB_BACKOFF_BASE": "0.2",
        "MOORAGE_JOB_BACKOFF_MAX": "0.5", "MOORAGE_UPLOAD_EXPIRY_INTERVAL": "0",
        "MOORAGE_GC_INTERVAL": "0"}
TIMEOUT = 90.0  # a loaded 2-core box runs the job late; the SBOM itself takes milliseconds

DPKG_STATUS = b"""\
Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl (3.0.11-1~deb12u2)
Version: 3.0.13-1~deb12u1
Description: Secure Sockets Layer toolkit

"""
METADATA = b"Metadata-Version: 2.1\nName: Requests\nVersion: 2.31.0\n\nThe description.\n"


@pytest.fixture(scope="module")
def sbom_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A one-worker server with SBOM on push (jobs run in the order they were queued)."""
    reg = start_registry(tmp_path_factory.mktemp("sbom"), "--workers", "1", **FAST)
    yield reg
    reg.stop()


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def two_layer_image(tag_text: str = "") -> Manifest:
    """Layer 1 (tar+gzip): Debian os-release and a dpkg status; layer 2 (tar+zstd): a
    dist-info of a Python package."""
    import zstandard

    lower = gzip.compress(_tar({
        "etc/os-release": b'ID=debian\nVERSION_ID="12"\nVERSION="12 (bookworm)"\n',
        "var/lib/dpkg/status": DPKG_STATUS,
        "etc/marker": tag_text.encode()}), mtime=0)
    upper = zstandard.ZstdCompressor().compress(_tar({
        "usr/lib/python3/site-packages/requests-2.31.0.dist-info/METADATA": METADATA}))
    return make_image(layer_blobs=[Blob(lower, OCI_LAYER_GZIP), Blob(upper, OCI_LAYER_ZSTD)])


def sboms(reg: Server, repo: str, digest: str) -> list[dict]:
    return [d for d in all_referrers(reg, repo, digest) if d.get("artifactType") == CYCLONEDX]


def wait_for_sbom(reg: Server, repo: str, digest: str) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = sboms(reg, repo, digest)
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no SBOM referrer for {repo}@{digest} after {TIMEOUT}s")


def sbom_document(reg: Server, repo: str, referrer: str) -> tuple[dict, dict]:
    r = get_manifest(reg, repo, referrer)
    assert r.status_code == 200, r.text
    manifest = r.json()
    (layer,) = manifest["layers"]
    blob = http.get(blob_url(reg, repo, layer["digest"]))
    assert blob.status_code == 200
    return manifest, json.loads(blob.content)


def settled(reg: Server, repo: str) -> None:
    """Push one more image and wait for its SBOM: the one-worker server's jobs run in order, so
    any job an earlier push queued has run by then."""
    marker = two_layer_image(new_tag("marker"))
    wait_for_sbom(reg, repo, push_tree(reg, repo, marker))


def test_a_pushed_image_gets_one_cyclonedx_referrer_listing_its_packages(sbom_registry):
    reg, repo = sbom_registry, new_repo("sbom")
    image = two_layer_image()
    digest = push_tree(reg, repo, image, tag="v1")
    listed = wait_for_sbom(reg, repo, digest)
    assert listed["annotations"]["org.moorage.sbom.generator"] == "moorage"
    assert "org.opencontainers.image.created" in listed["annotations"]
    manifest, doc = sbom_document(reg, repo, listed["digest"])
    assert manifest["artifactType"] == CYCLONEDX
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert manifest["subject"] == {"mediaType": image.media_type, "digest": digest,
                                   "size": image.size}
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.5"
    assert doc["metadata"]["component"]["version"] == digest
    lower, upper = image.blobs[1].digest, image.blobs[2].digest
    libs = {c["purl"]: {p["name"]: p["value"] for p in c["properties"]}
            for c in doc["components"] if c["type"] == "library"}
    assert set(libs) == {
        "pkg:deb/debian/libssl3@3.0.13-1~deb12u1?arch=amd64&distro=debian-12&upstream=openssl",
        "pkg:pypi/requests@2.31.0"}
    ssl = libs["pkg:deb/debian/libssl3@3.0.13-1~deb12u1?arch=amd64&distro=debian-12"
               "&upstream=openssl"]
    assert ssl["moorage:layer"] == lower
    assert (ssl["moorage:source:name"], ssl["moorage:source:version"]) == (
        "openssl", "3.0.11-1~deb12u2")
    assert libs["pkg:pypi/requests@2.31.0"]["moorage:layer"] == upper
    (os_component,) = [c for c in doc["components"] if c["type"] == "operating-system"]
    assert (os_component["name"], os_component["version"]) == ("debian", "12")
    # The SBOM is untagged: the repository's tags are the image's own.
    tags = http.get(f"{reg.url}/v2/{repo}/tags/list").json()["tags"]
    assert tags == ["v1"]

    # The same image again, under another tag: no second SBOM.
    push_manifest(reg, repo, image.body, image.media_type, ref="v1-again")
    settled(reg, repo)
    assert [d["digest"] for d in sboms(reg, repo, digest)] == [listed["digest"]]


def test_an_image_with_an_uploaded_sbom_gets_no_generated_one(sbom_registry):
    reg, repo = sbom_registry, new_repo("sbom")
    image = two_layer_image(new_tag("own"))
    for blob in image.blobs:
        push_blob(reg, repo, blob.data)
    own = make_artifact(CYCLONEDX, subject=image,
                        layers=[Blob(b'{"bomFormat":"CycloneDX","specVersion":"1.5"}',
                                     CYCLONEDX)])
    # The build's SBOM lands first (a referrer may precede its subject), then the image.
    push_tree(reg, repo, own)
    digest = push_manifest(reg, repo, image.body, image.media_type, ref="v1")
    settled(reg, repo)
    assert [d["digest"] for d in sboms(reg, repo, digest)] == [own.digest]


def test_each_image_child_of_an_index_gets_its_own_sbom_and_the_index_none(sbom_registry):
    reg, repo = sbom_registry, new_repo("sbom")
    children = [two_layer_image(new_tag("amd64")), two_layer_image(new_tag("arm64"))]
    index = make_index(children)
    index_digest = push_tree(reg, repo, index, tag="multi")
    for child in children:
        listed = wait_for_sbom(reg, repo, child.digest)
        _, doc = sbom_document(reg, repo, listed["digest"])
        assert doc["metadata"]["component"]["version"] == child.digest
    settled(reg, repo)
    for child in children:
        assert len(sboms(reg, repo, child.digest)) == 1
    assert sboms(reg, repo, index_digest) == []


def test_an_artifact_child_of_an_index_gets_no_sbom(sbom_registry):
    reg, repo = sbom_registry, new_repo("sbom")
    child = two_layer_image(new_tag("solo"))
    art = make_artifact()
    push_tree(reg, repo, make_index([child, art]), tag="mixed")
    wait_for_sbom(reg, repo, child.digest)
    settled(reg, repo)
    assert len(sboms(reg, repo, child.digest)) == 1
    assert all_referrers(reg, repo, art.digest) == []


def _cli(reg: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`moorage ARGS` against the server's registry (its data dir, database and storage)."""
    node = reg.nodes[0] if hasattr(reg, "nodes") else reg
    target = ["--data-dir", str(node.data_dir)]
    extra = list(node.extra_args)
    for flag in ("--database", "--storage"):
        if flag in extra:
            target += [flag, extra[extra.index(flag) + 1]]
    return run_moorage(*args, *target, env=node.env, check=check)


def test_sbom_show_prints_the_packages_of_the_stored_referrer(sbom_registry):
    reg, repo = sbom_registry, new_repo("sbom")
    image = two_layer_image(new_tag("show"))
    digest = push_tree(reg, repo, image, tag="v2")
    listed = wait_for_sbom(reg, repo, digest)
    shown = json.loads(_cli(reg, "sbom", "show", f"{repo}:v2", "--json").stdout.splitlines()[-1])
    assert (shown["digest"], shown["sbom"], shown["generated"]) == (
        digest, listed["digest"], True)
    assert sorted((p["name"], p["version"], p["type"], p["layer"]) for p in shown["packages"]) == [
        ("Requests", "2.31.0", "pypi", image.blobs[2].digest),
        ("libssl3", "3.0.13-1~deb12u1", "deb", image.blobs[1].digest)]
    table = _cli(reg, "sbom", "show", f"{repo}@{digest}").stdout
    assert "libssl3" in table and "pkg:pypi/requests@2.31.0" in table
    missing = _cli(reg, "sbom", "show", f"{repo}:nope", check=False)
    assert (missing.returncode, missing.stderr.strip()) == (1, f"error: no manifest {repo}:nope")


def test_scan_show_of_our_sbom_referrer_says_whose_sbom_it_is(sbom_registry):
    reg, repo = sbom_registry, new_repo("sbom")
    digest = push_tree(reg, repo, two_layer_image(new_tag("whose")), tag="v3")
    referrer = wait_for_sbom(reg, repo, digest)["digest"]

    report = json.loads(_cli(reg, "scan", "show", f"{repo}@{referrer}", "--json")
                        .stdout.splitlines()[-1])
    text = _cli(reg, "scan", "show", f"{repo}@{referrer}").stdout

    image = f"{repo}@{digest}"
    reason = (f"not scanned: it is an SBOM ({CYCLONEDX}) of {image}; its scan report: "
              f"`moorage scan show {image}`, its packages: `moorage sbom show {image}`")
    assert (report["status"], report["reason"]) == ("unsupported", reason)
    assert f"{repo}@{referrer}: unsupported (not scanned: it is an SBOM" in text
