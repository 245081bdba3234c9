"""Scan reports on a real embedded registry: the post-push scan job reads each image once and
writes a report with an honest status (pending → done / unsupported / failed); vulnerabilities
are matched by source package and OSV ecosystem and re-matched after an import without reading
a layer; secrets are found in every layer and never stored; model files are checked."""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from moorage.bootstrap import Registry
from moorage.events.processors import PostPushConsumer
from moorage.scan.reports import KEYS

from .conftest import make_registry
from .content import OCI_MANIFEST, digest_of, events_after, image, push, push_blob, run_job
from .layers_fixture import gz, tar_bytes
from .osvdata import CRITICAL_V3, MEDIUM_V3, debian, ecosystem_range, ghsa, write_dir
from .secretdata import ALL, files

KIND = "post-push.sbom"
OS_RELEASE = b'ID=debian\nVERSION_ID="12"\nVERSION="12 (bookworm)"\n'
DPKG = (b"Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\n"
        b"Source: openssl (1:3.0.11-1~deb12u2)\nVersion: 1:3.0.11-1~deb12u2\n\n"
        b"Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\n"
        b"Source: zlib\nVersion: 1:1.2.13.dfsg-1\n")
METADATA = b"Metadata-Version: 2.1\nName: Requests\nVersion: 2.31.0\n"
DIST_INFO = "usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA"


def _osv(tmp_path: Path) -> Path:
    """Records around the image's packages: two affect it, the others are edge cases that
    must not match (a fix at or below the installed version, an epoch, a binary name)."""
    records = [
        debian("DSA-9001-1", "openssl", "1:3.0.11-1~deb12u3", aliases=["CVE-2099-1001"],
               severity=[{"type": "CVSS_V3", "score": CRITICAL_V3}]),
        debian("DSA-9002-1", "openssl", "1:3.0.11-1~deb12u2"),  # fixed in the installed one
        debian("DSA-9003-1", "openssl", "3.0.12-1"),  # no epoch: older than 1:3.0.11
        debian("DSA-9004-1", "libssl3", "1:9.9.9-1"),  # OSV names source packages only
        debian("DSA-9005-1", "openssl", "1:3.0.11-1~deb12u3", ecosystem="Debian:11"),
        ghsa("GHSA-9006-aaaa-bbbb", "PyPI", "requests",
             [ecosystem_range(("introduced", "2.0"), ("fixed", "2.32.0"))],
             severity=[{"type": "CVSS_V3", "score": MEDIUM_V3}]),
        ghsa("GHSA-9007-aaaa-bbbb", "PyPI", "requests",
             [ecosystem_range(("introduced", "0"), ("fixed", "2.31.0"))]),
        ghsa("GHSA-9008-aaaa-bbbb", "PyPI", "requests",
             [ecosystem_range(("introduced", "2.32.0rc1"), ("fixed", "2.32.1"))]),
    ]
    return write_dir(tmp_path / "osv", records)


def _config() -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux",
                       "author": uuid.uuid4().hex}).encode()


def _push_image(registry: Registry, repo: str, layers: list[bytes],
                layer_type: str | None = None) -> str:
    config = _config()
    for blob in (config, *layers):
        push_blob(registry, repo, blob)
    doc = json.loads(image(config, layers))
    if layer_type:
        for desc in doc["layers"]:
            desc["mediaType"] = layer_type
    content = json.dumps(doc).encode()
    push(registry, repo, "v1", content)
    return digest_of(content)


def _push_manifest(registry: Registry, repo: str, doc: dict[str, Any]) -> str:
    content = json.dumps(doc).encode()
    push(registry, repo, digest_of(content), content)
    return digest_of(content)


def _scan(registry: Registry, repo: str, digest: str) -> dict[str, Any]:
    """Queue the scan as the post-push consumer does, then run its job; the report."""
    events = [e for e in events_after(registry, 0)
              if e["type"] == "ManifestPushed" and e["digest"] == digest]
    PostPushConsumer(registry.processors, registry.jobs).handle(events, None)
    assert registry.scans.show(repo, digest)["status"] == "pending"
    (job,) = [j for j in registry.jobs.list(kind=KIND) if j.unique_key.endswith(digest)]
    run_job(registry, job.id)
    return registry.scans.show(repo, digest)


def _debian_image(registry: Registry, repo: str) -> tuple[str, list[str]]:
    lower = gz(tar_bytes({"etc/os-release": OS_RELEASE, "var/lib/dpkg/status": DPKG}))
    upper = gz(tar_bytes({DIST_INFO: METADATA}))
    return _push_image(registry, repo, [lower, upper]), [digest_of(lower), digest_of(upper)]


def test_vulnerabilities_are_matched_by_source_package_and_release(registry: Registry,
                                                                    tmp_path: Path) -> None:
    registry.vulndb.import_paths([_osv(tmp_path)])
    digest, (lower, upper) = _debian_image(registry, "team/app")
    assert registry.scans.show("team/app", digest) == {
        "status": "pending", "reason": "not scanned yet", "error": None, "scanned_at": None,
        "packages": [], "vulnerabilities": [], "secrets": [], "model_findings": []}

    report = _scan(registry, "team/app", digest)

    assert set(report) == set(KEYS)
    assert (report["status"], report["reason"], report["error"]) == ("done", None, None)
    assert {(p["name"], p["ecosystem"], p["layer"]) for p in report["packages"]} == {
        ("libssl3", "Debian:12", lower), ("zlib1g", "Debian:12", lower),
        ("Requests", "PyPI", upper)}
    found = [(v["id"], v["package"], v["installed"], v["fixed"], v["severity"], v["layer"])
             for v in report["vulnerabilities"]]
    assert found == [
        ("DSA-9001-1", "libssl3", "1:3.0.11-1~deb12u2", "1:3.0.11-1~deb12u3", "critical",
         lower),
        ("GHSA-9006-aaaa-bbbb", "Requests", "2.31.0", "2.32.0", "medium", upper)]
    (dsa,) = [v for v in report["vulnerabilities"] if v["id"] == "DSA-9001-1"]
    assert (dsa["aliases"], dsa["source"], dsa["score"]) == (["CVE-2099-1001"], "openssl", 9.8)
    assert report["secrets"] == [] and report["model_findings"] == []
    # The SBOM came out of the same read.
    assert sorted(c["name"] for c in registry.sboms.show(f"team/app@{digest}").document[
        "components"] if c["type"] == "library") == ["Requests", "libssl3", "zlib1g"]
    events = {e["type"]: e for e in events_after(registry, 0)
              if e["digest"] == digest and e["type"] != "ManifestPushed"}
    assert events["VulnerabilityFound"]["payload"] == {
        "total": 2, "by_severity": {"critical": 1, "medium": 1}, "rematch": False}
    assert events["ScanCompleted"]["payload"]["status"] == "done"
    assert "SecretFound" not in events


def test_a_clean_image_has_an_empty_done_report(registry: Registry, tmp_path: Path) -> None:
    registry.vulndb.import_paths([_osv(tmp_path)])
    layer = gz(tar_bytes({"etc/os-release": OS_RELEASE, "var/lib/dpkg/status": DPKG[DPKG.index(
        b"Package: zlib1g"):], "app/main.py": b"print('hello')\n"}))
    digest = _push_image(registry, "team/clean", [layer])
    report = _scan(registry, "team/clean", digest)
    assert report["status"] == "done"
    assert [p["name"] for p in report["packages"]] == ["zlib1g"]
    assert (report["vulnerabilities"], report["secrets"], report["model_findings"]) == (
        [], [], [])


def test_secrets_are_found_in_every_layer_and_stored_nowhere(
        registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    planted = gz(tar_bytes(files()))
    # The next layer deletes two of them: they are still in the image's first layer.
    deleting = gz(tar_bytes({"root/.aws/.wh.credentials": None, "root/.wh..npmrc": None,
                             "etc/os-release": OS_RELEASE}))
    digest = _push_image(registry, "team/leaky", [planted, deleting])
    report = _scan(registry, "team/leaky", digest)

    assert report["status"] == "done"
    assert {(s["rule"], s["path"], s["layer"]) for s in report["secrets"]} == {
        ("aws-access-key-id", "root/.aws/credentials", digest_of(planted)),
        ("aws-secret-access-key", "root/.aws/credentials", digest_of(planted)),
        ("huggingface-token", "app/settings.py", digest_of(planted)),
        ("github-token", "app/deploy.sh", digest_of(planted)),
        ("npmrc-auth-token", "root/.npmrc", digest_of(planted)),
        ("docker-config-auth", "root/.docker/config.json", digest_of(planted)),
        ("private-key", "etc/ssl/private/server.key", digest_of(planted))}
    sbom = registry.sboms.show(f"team/leaky@{digest}").document
    outbox = events_after(registry, 0)
    (found,) = [e for e in outbox if e["type"] == "SecretFound"]
    assert found["payload"]["total"] == 7
    with registry.database.read() as uow:
        stored = uow.scans.get("team/leaky", digest)
    everything = "\n".join([json.dumps(report), json.dumps(stored, default=str),
                            json.dumps(outbox, default=str), json.dumps(sbom), caplog.text])
    for rule, value in ALL.items():
        assert value not in everything, rule


def _evil_pickle(marker: Path) -> bytes:
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps({"weights": Payload()}, protocol=4)


def test_model_files_in_tar_layers_and_raw_model_layers(registry: Registry,
                                                        tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = _evil_pickle(marker)
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 8]},
                         "v": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    layer = gz(tar_bytes({
        "models/evil.pkl": evil,
        "models/good.pkl": pickle.dumps({"lr": 0.1, "steps": [1, 2]}, protocol=2),
        "models/bad.safetensors": len(header).to_bytes(8, "little") + header + bytes(8),
        "models/bad.gguf": b"GGUX" + bytes(60)}))
    digest = _push_image(registry, "ml/image", [layer])
    report = _scan(registry, "ml/image", digest)
    assert report["status"] == "done"
    assert sorted((m["path"], m["kind"]) for m in report["model_findings"]) == [
        ("models/bad.gguf", "bad-gguf"), ("models/bad.safetensors", "bad-safetensors"),
        ("models/evil.pkl", "dangerous-import")]

    # A ModelPack artifact whose weight is a raw pickle layer.
    config = b'{"descriptor": {"name": "m"}}'
    for blob in (config, evil):
        push_blob(registry, "ml/model", blob)
    model = _push_manifest(registry, "ml/model", {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.cncf.model.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.model.config.v1+json",
                   "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.cncf.model.weight.v1.raw",
                    "digest": digest_of(evil), "size": len(evil),
                    "annotations": {"org.opencontainers.image.title": "pytorch_model.bin"}}]})
    report = _scan(registry, "ml/model", model)
    assert report["status"] == "done"
    assert [(m["path"], m["kind"], m["layer"]) for m in report["model_findings"]] == [
        ("pytorch_model.bin", "dangerous-import", digest_of(evil))]
    assert not marker.exists()


def _delete_blob_files(registry: Registry, repo: str, digests: list[str]) -> None:
    from moorage.oci.digest import parse_digest

    for d in digests:
        key = registry.blobs.locate(repo, parse_digest(d)).storage_key
        path = registry.blob_store.root / key  # type: ignore[attr-defined]
        path.unlink()


def test_an_import_rematches_stored_reports_without_reading_layers(registry: Registry,
                                                                   tmp_path: Path) -> None:
    registry.vulndb.import_paths([_osv(tmp_path)])
    digest, layers = _debian_image(registry, "team/later")
    before = _scan(registry, "team/later", digest)
    assert [v["id"] for v in before["vulnerabilities"]] == [
        "DSA-9001-1", "GHSA-9006-aaaa-bbbb"]
    _delete_blob_files(registry, "team/later", layers)  # a re-read would fail the job now
    last = events_after(registry, 0)[-1]["id"]

    new = debian("DSA-9009-1", "zlib", "1:1.3-1", aliases=["CVE-2099-1009"])
    registry.vulndb.import_paths([write_dir(tmp_path / "new", [new])])
    (job,) = registry.jobs.list(kind="scan.rematch", state="queued")
    done = run_job(registry, job.id)

    assert done.state == "done", done.last_error
    after = registry.scans.show("team/later", digest)
    assert sorted(v["id"] for v in after["vulnerabilities"]) == [
        "DSA-9001-1", "DSA-9009-1", "GHSA-9006-aaaa-bbbb"]
    (zlib,) = [v for v in after["vulnerabilities"] if v["id"] == "DSA-9009-1"]
    assert (zlib["package"], zlib["source"], zlib["layer"]) == ("zlib1g", "zlib", layers[0])
    (event,) = [e for e in events_after(registry, last) if e["type"] == "VulnerabilityFound"]
    assert event["payload"] == {"total": 3, "by_severity": {"critical": 1, "medium": 1,
                                                            "unknown": 1}, "rematch": True}


def test_what_cannot_be_scanned_says_why(registry: Registry, tmp_path: Path) -> None:
    blob = b"helm chart bytes"
    config = b"{}"
    for b in (blob, config):
        push_blob(registry, "team/charts", b)
    chart = _push_manifest(registry, "team/charts", {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                   "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "digest": digest_of(blob), "size": len(blob)}]})
    report = _scan(registry, "team/charts", chart)
    assert (report["status"], report["reason"]) == (
        "unsupported", ("artifact type application/vnd.cncf.helm.config.v1+json is not scanned "
                       "(only container images and model artifacts are)"))
    assert report["packages"] == [] and report["vulnerabilities"] == []

    layer = gz(tar_bytes({"etc/os-release": OS_RELEASE}))
    encrypted = _push_image(registry, "team/secret", [layer],
                            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted")
    report = _scan(registry, "team/secret", encrypted)
    assert (report["status"], report["reason"]) == (
        "unsupported", (f"layer {digest_of(layer)} is encrypted "
                       "(application/vnd.oci.image.layer.v1.tar+gzip+encrypted)"))


def test_a_scan_limit_fails_the_report_with_the_error(tmp_path: Path) -> None:
    registry = make_registry(tmp_path / "r", scan_max_entries=1)
    try:
        digest, _ = _debian_image(registry, "team/big")
        report = _scan(registry, "team/big", digest)
        assert report["status"] == "failed"
        assert report["error"] == ("ScanLimitExceeded: more than 1 tar entries "
                                   "(scan_max_entries)")
        assert report["packages"] == []
    finally:
        registry.close()


def test_a_rescan_resets_the_report_to_pending(registry: Registry) -> None:
    digest, _ = _debian_image(registry, "team/again")
    assert _scan(registry, "team/again", digest)["status"] == "done"
    assert registry.scans.rescan("team/again:v1") == ("team/again", digest)
    assert registry.scans.show("team/again", digest)["status"] == "pending"
    (job,) = [j for j in registry.jobs.list(kind=KIND, state="queued")]
    run_job(registry, job.id)
    assert registry.scans.show("team/again", digest)["status"] == "done"


def test_a_batched_match_equals_one_match_per_package(registry: Registry,
                                                      tmp_path: Path) -> None:
    records = [ghsa(f"GHSA-{n:04d}-aaaa-bbbb", "PyPI", f"pkg{n}",
                    [ecosystem_range(("introduced", "0"), ("fixed", "1.5"))])
               for n in range(0, 500, 5)]
    registry.vulndb.import_paths([write_dir(tmp_path / "many", records)])
    queries = [("PyPI", f"pkg{n}", "1.0" if n % 2 else "2.0") for n in range(500)]
    started = time.perf_counter()
    one_by_one = [registry.vulndb.match(*q) for q in queries]
    single = time.perf_counter() - started
    started = time.perf_counter()
    batched = registry.vulndb.match_many(queries)
    many = time.perf_counter() - started
    print(f"500 packages: one query each {single * 1000:.0f} ms, batched {many * 1000:.0f} ms")
    assert batched == one_by_one
    assert sum(len(f) for f in batched) == 50


def _pushed(registry: Registry, repo: str, reference: str | None = None) -> str:
    """A pushed one-layer image (by digest unless `reference`); its digest."""
    layer = gz(tar_bytes({"etc/hostname": uuid.uuid4().bytes}))
    config = _config()
    for blob in (config, layer):
        push_blob(registry, repo, blob)
    content = image(config, [layer])
    from moorage.oci.digest import parse_digest

    push(registry, repo, reference or parse_digest(digest_of(content)), content)
    return digest_of(content)


def _reported_model(registry: Registry, repo: str, reference: str) -> str:
    """A pushed image with a done report and a model index row; its digest."""
    digest = _pushed(registry, repo, reference)
    registry.scans.record(repo, digest, "done")
    with registry.database.write() as uow:
        uow.models.replace(repo, digest, {"kind": "model", "name": "m"}, [
            {"path": "m.safetensors", "size": 1, "layer_digest": digest, "layer_offset": 0,
             "media_type": "application/octet-stream", "tensors": []}])
    return digest


def _derived(registry: Registry, repo: str, digest: str) -> tuple[Any, Any]:
    with registry.database.read() as uow:
        return uow.scans.get(repo, digest), uow.models.get(repo, digest)


def test_a_deleted_manifest_takes_its_report_and_model_row_with_it(registry: Registry) -> None:
    import asyncio

    from moorage.oci.digest import parse_digest

    repo = "team/deleted"
    gone, kept = _reported_model(registry, repo, "v1"), _reported_model(registry, repo, "v2")
    assert _derived(registry, repo, gone)[0]["status"] == "done"

    asyncio.run(registry.manifests.delete(repo, parse_digest(gone)))

    assert _derived(registry, repo, gone) == (None, None)
    report, model = _derived(registry, repo, kept)
    assert (report["status"], model["name"]) == ("done", "m")
    # A scan finishing after the delete stores nothing.
    registry.scans.record(repo, gone, "done")
    assert _derived(registry, repo, gone) == (None, None)


def test_gc_of_an_untagged_manifest_removes_its_report_and_model_row(registry: Registry) -> None:
    from moorage.auth.identity import CLI

    repo = "team/collected"
    untagged = _pushed(registry, repo)
    registry.scans.record(repo, untagged, "done")
    tagged = _reported_model(registry, repo, "keep")

    report = registry.gc.run(CLI, dry_run=False, grace_period=0)

    assert report.manifests == 1
    assert _derived(registry, repo, untagged)[0] is None
    assert _derived(registry, repo, tagged)[0]["status"] == "done"
