"""The `post-push.sbom` job on a real embedded registry: an index's job queues its image
children, a scan limit fails the job with its reason and stores nothing, and `sbom show`
reads the stored referrer back."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from moorage.bootstrap import Registry
from moorage.scan.processor import ARTIFACT_TYPE

from .conftest import make_registry
from .content import digest_of, image, push, push_blob, run_job
from .layers_fixture import gz, tar_bytes

KIND = "post-push.sbom"
STATUS = b"Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\n" \
         b"Source: zlib\nVersion: 1:1.2.13.dfsg-1\n"
INDEX = "application/vnd.oci.image.index.v1+json"


def _image(registry: Registry, repo: str) -> bytes:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "author": uuid.uuid4().hex}).encode()
    layer = gz(tar_bytes({"etc/os-release": b"ID=debian\nVERSION_ID=12\n",
                          "var/lib/dpkg/status": STATUS,
                          "etc/hostname": uuid.uuid4().hex.encode()}))
    push_blob(registry, repo, config)
    push_blob(registry, repo, layer)
    content = image(config, [layer])
    push(registry, repo, digest_of(content), content)
    return content


def _queue(registry: Registry, repo: str, digest: str, media_type: str) -> int:
    job, _ = registry.jobs.enqueue_once(KIND, {"repository": repo, "digest": digest,
                                              "media_type": media_type}, f"sbom:{repo}@{digest}")
    return job.id


def _sbom_referrers(registry: Registry, repo: str, digest: str) -> list[dict]:
    from moorage.oci.digest import parse_digest

    page = registry.referrers.list(repo, parse_digest(digest), ARTIFACT_TYPE, None, 100)
    return page.descriptors


def test_an_index_job_queues_one_job_per_image_child(registry: Registry) -> None:
    repo = "team/multi"
    children = [_image(registry, repo), _image(registry, repo)]
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest_of(c),
         "size": len(c), "platform": {"architecture": a, "os": "linux"}}
        for c, a in zip(children, ("amd64", "arm64"), strict=True)]}).encode()
    asyncio.run(registry.manifests.push(repo, "multi", index, INDEX, []))
    (sbom,) = [p for p in registry.processors if p.name == "sbom"]
    # The processor itself, as its job would run it (the runner is tested in tests/lifecycle).
    payload = {"repository": repo, "digest": digest_of(index), "media_type": INDEX}
    assert sbom.run(payload) == {"children": 2}
    jobs = {j.unique_key: j for j in registry.jobs.list(kind=KIND)}
    assert set(jobs) == {f"sbom:{repo}@{digest_of(x)}" for x in children}
    for child in children:
        result = sbom.run(jobs[f"sbom:{repo}@{digest_of(child)}"].payload)
        (listed,) = _sbom_referrers(registry, repo, digest_of(child))
        assert result == {"sbom": listed["digest"], "components": 2}  # the OS and zlib1g
        stored = registry.sboms.show(f"{repo}@{digest_of(child)}")
        assert stored.referrer == listed["digest"] and stored.generated
        (lib,) = [c for c in stored.document["components"] if c["type"] == "library"]
        assert lib["purl"] == ("pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64"
                               "&distro=debian-12&upstream=zlib")
    # Again: every child is queued already, and each has its SBOM.
    assert sbom.run(payload) == {"children": 0}
    assert len(registry.jobs.list(kind=KIND)) == 2
    assert _sbom_referrers(registry, repo, digest_of(index)) == []
    for child in children:
        assert sbom.run({"repository": repo, "digest": digest_of(child)})["skipped"].startswith(
            "has an SBOM referrer")


def test_a_scan_limit_fails_the_job_with_its_reason_and_stores_nothing(tmp_path: Path) -> None:
    registry = make_registry(tmp_path / "r", scan_max_entries=2, job_backoff_base=0.01)
    try:
        repo = "team/limited"
        content = _image(registry, repo)
        job = run_job(registry, _queue(registry, repo, digest_of(content),
                                       "application/vnd.oci.image.manifest.v1+json"))
        assert (job.state, job.attempts) == ("failed", 1)  # no retry repeats the same scan
        assert "ScanLimitExceeded" in (job.last_error or "")
        assert "scan_max_entries" in (job.last_error or "")
        assert _sbom_referrers(registry, repo, digest_of(content)) == []
    finally:
        registry.close()


def test_a_layer_that_is_not_a_tar_is_listed_as_skipped_and_the_rest_catalogued(
        registry: Registry) -> None:
    repo = "team/mixed"
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    good = gz(tar_bytes({"var/lib/dpkg/status": STATUS}))
    weights = b"GGUF" + bytes(4000)  # a raw model layer in an image
    for blob in (config, good, weights):
        push_blob(registry, repo, blob)
    content = image(config, [good, weights])
    push(registry, repo, digest_of(content), content)
    job = run_job(registry, _queue(registry, repo, digest_of(content),
                                   "application/vnd.oci.image.manifest.v1+json"))
    assert job.state == "done", job.last_error
    doc = registry.sboms.show(f"{repo}@{digest_of(content)}").document
    assert [c["name"] for c in doc["components"]] == ["zlib1g"]
    assert doc["metadata"]["properties"] == [{
        "name": f"moorage:skipped-layer:{digest_of(weights)}",
        "value": "not a tar, tar+gzip or tar+zstd layer (unknown magic bytes)"}]


def test_our_sbom_referrer_gets_no_scan_report(registry: Registry) -> None:
    repo = "team/sbom"
    child = _image(registry, repo)
    (sbom,) = [p for p in registry.processors if p.name == "sbom"]
    referrer = sbom.run({"repository": repo, "digest": digest_of(child)})["sbom"]
    sbom.queued(repo, referrer)  # as the post-push consumer does for the referrer's push
    with registry.database.read() as uow:
        assert uow.scans.get(repo, referrer)["status"] == "pending"

    assert sbom.run({"repository": repo, "digest": referrer}) == {"skipped": "an SBOM referrer"}
    with registry.database.read() as uow:
        assert uow.scans.get(repo, referrer) is None
        assert uow.scans.get(repo, digest_of(child))["status"] == "done"
