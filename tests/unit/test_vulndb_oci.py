"""OSV data as an OCI artifact on a real embedded registry: `vulndb publish` pushes zips and JSON
files as one artifact, `vulndb import oci://REPO:TAG` reads it back, the `vulndb.import-oci`
job imports a digest once (and again when the tag moves), anything else is refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moorage.bootstrap import Registry
from moorage.cli import app
from moorage.scan.osv_oci import ARTIFACT_TYPE, JSON_LAYER, ZIP_LAYER
from moorage.scan.sources import SourceError

from .conftest import make_registry
from .content import push, pushed_image, run_job
from .osvdata import debian, ecosystem_range, ghsa, write_zip

REF = "osv/data:latest"
KIND = "vulndb.import-oci"


def _files(tmp_path: Path, curl_fixed: str = "7.88.1-10") -> list[Path]:
    export = write_zip(tmp_path / "Debian" / "all.zip", [
        debian("DSA-5001-1", "openssl", "3.0.11-1"),
        debian("DSA-5002-1", "curl", curl_fixed,
               modified="2024-03-01T10:00:00Z" if curl_fixed == "7.88.1-10"
               else "2024-06-01T10:00:00Z")])
    records = tmp_path / "pypi.json"
    records.write_text(json.dumps([ghsa("GHSA-oci0-0000-0001", "PyPI", "jinja2", [
        ecosystem_range(("introduced", "0"), ("fixed", "3.1.3"))])]))
    return [export, records]


def _publish(registry: Registry, paths: list[Path], ref: str = REF) -> str:
    return asyncio.run(registry.osv_artifacts.publish(paths, ref))


def _ids(registry: Registry, ecosystem: str, name: str, version: str) -> list[str]:
    return sorted(f.id for f in registry.vulndb.match(ecosystem, name, version))


def test_a_published_artifact_imports_back(registry: Registry, tmp_path: Path) -> None:
    digest = _publish(registry, _files(tmp_path))
    row = registry.manifests.get("osv/data", "latest", True)
    doc = json.loads(row.content)
    assert (row.digest, doc["artifactType"]) == (digest, ARTIFACT_TYPE)
    assert [(layer["mediaType"], layer["annotations"]["org.opencontainers.image.title"])
            for layer in doc["layers"]] == [(ZIP_LAYER, "all.zip"), (JSON_LAYER, "pypi.json")]

    report, read = registry.osv_artifacts.import_ref(REF)

    assert read == digest
    assert (report.ecosystems["Debian"].added, report.ecosystems["PyPI"].added) == (2, 1)
    assert _ids(registry, "Debian:12", "curl", "7.88.1-9") == ["DSA-5002-1"]
    assert _ids(registry, "PyPI", "jinja2", "3.1.2") == ["GHSA-oci0-0000-0001"]


def test_the_job_imports_a_digest_once_and_again_when_the_tag_moves(
        registry: Registry, tmp_path: Path) -> None:
    first = _publish(registry, _files(tmp_path / "v1"))
    job, _ = registry.jobs.enqueue(KIND, {"ref": REF})
    done = run_job(registry, job.id)
    assert done.state == "done", done.last_error
    with registry.database.read() as uow:
        assert uow.vulns.source_digest(REF) == first
    assert _ids(registry, "Debian:12", "curl", "7.88.1-10") == []
    assert registry.osv_artifacts.refresh(REF) == {"skipped": "imported already",
                                                   "digest": first}

    second = _publish(registry, _files(tmp_path / "v2", curl_fixed="7.88.1-11"))
    rematch_before = len(registry.jobs.list(kind="scan.rematch", limit=1000))
    refreshed = registry.osv_artifacts.refresh(REF)

    assert refreshed["digest"] == second != first
    assert refreshed["ecosystems"]["Debian"]["updated"] == 1
    assert _ids(registry, "Debian:12", "curl", "7.88.1-10") == ["DSA-5002-1"]
    assert len(registry.jobs.list(kind="scan.rematch", limit=1000)) >= max(rematch_before, 1)


def test_an_image_is_not_osv_data(registry: Registry, tmp_path: Path) -> None:
    content = pushed_image(registry, "osv/wrong")
    push(registry, "osv/wrong", "v1", content)

    with pytest.raises(SourceError, match="osv/wrong:v1 is not an OSV data artifact: a layer is "
                                          "application/vnd.oci.image.layer.v1.tar"):
        registry.osv_artifacts.import_ref("osv/wrong:v1")
    with pytest.raises(SourceError, match="not a file"):
        _publish(registry, [tmp_path])


def test_publish_and_import_through_the_cli(tmp_path: Path) -> None:
    make_registry(tmp_path / "reg").close()
    where = ("--data-dir", str(tmp_path / "reg"))
    runner = CliRunner()

    published = runner.invoke(app, ["vulndb", "publish", *map(str, _files(tmp_path)), REF,
                                    *where])
    assert published.exit_code == 0, published.output
    assert published.stdout.startswith(f"published {REF}@sha256:")

    imported = runner.invoke(app, ["vulndb", "import", f"oci://{REF}", "--json", *where])
    assert imported.exit_code == 0, imported.output
    report = json.loads(imported.stdout.splitlines()[-1])
    assert (report["ecosystems"]["Debian"]["added"], report["ecosystems"]["PyPI"]["added"]) == (
        2, 1)
    missing = runner.invoke(app, ["vulndb", "import", "oci://osv/none:latest", *where])
    assert missing.exit_code == 1
    both = runner.invoke(app, ["vulndb", "import", f"oci://{REF}", str(tmp_path), *where])
    assert both.exit_code == 2


def test_a_vulndb_oci_ref_schedules_the_import(tmp_path: Path) -> None:
    registry = make_registry(tmp_path / "reg", vulndb_oci_ref=REF, vulndb_oci_interval=600.0)
    try:
        registry.ensure_schedules()
        [job] = registry.jobs.list(kind=KIND)
        assert (job.unique_key, job.payload) == ("schedule", {"ref": REF, "every": 600.0})
    finally:
        registry.close()
