"""`moorage backup` while pushes go on, `moorage restore` into a new data dir: every image
acknowledged before the backup began pulls from the restored registry with its digests, and
`moorage check` finds nothing. PostgreSQL/S3 registries get the procedure instead."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import requests
from support.oci import ACCEPT_MANIFESTS, digest_of, push_image
from support.servers import run_moorage, start_local


def _pull_verified(server, repo: str, tag: str, manifest: str, blobs: dict[str, bytes]) -> None:  # type: ignore[no-untyped-def]
    got = requests.get(f"{server.url}/v2/{repo}/manifests/{tag}", timeout=60,
                       headers={"Accept": ACCEPT_MANIFESTS})
    assert got.status_code == 200, (repo, tag, got.text)
    assert digest_of(got.content) == manifest
    for digest, data in blobs.items():
        if digest == manifest:
            continue
        blob = requests.get(f"{server.url}/v2/{repo}/blobs/{digest}", timeout=60)
        assert blob.status_code == 200, (repo, digest)
        assert digest_of(blob.content) == digest and blob.content == data


def test_backup_during_pushes_restores_every_acknowledged_image(tmp_path: Path):
    source = start_local(tmp_path / "source", "--workers", "2")
    before = []
    for i in range(6):
        repo = f"backup/app{i % 3}"
        before.append((repo, f"v{i}", *push_image(source, repo, f"v{i}", 50_000 + i)))

    stop, during, failures = threading.Event(), [], []

    def keep_pushing() -> None:
        n = 0
        while not stop.is_set():
            try:
                during.append(push_image(source, "backup/busy", f"b{n}", 200_000))
            except Exception as exc:  # noqa: BLE001 (reported below)
                failures.append(exc)
                return
            n += 1

    pusher = threading.Thread(target=keep_pushing)
    pusher.start()
    try:
        backup_dir = tmp_path / "backup"
        done = run_moorage("backup", str(backup_dir), "--json",
                           "--data-dir", str(tmp_path / "source"), timeout=300)
    finally:
        stop.set()
        pusher.join(120)
        source.stop()
    assert not failures, failures
    assert during, "no push ran while the backup was taken"
    report = json.loads(done.stdout)
    assert report["counts"]["tags"] >= len(before)
    assert report["linked"] > 0 and report["copied"] == 0  # same filesystem: hard links
    manifest = json.loads((backup_dir / "backup.json").read_text())
    assert manifest["counts"] == report["counts"] and len(manifest["database_sha256"]) == 64

    restored_dir = tmp_path / "restored"
    run_moorage("restore", str(backup_dir), "--data-dir", str(restored_dir))
    refused = run_moorage("restore", str(backup_dir), "--data-dir", str(restored_dir),
                          check=False)
    assert refused.returncode == 2 and "not empty" in refused.stderr

    checked = run_moorage("check", "--grace", "0", "--data-dir", str(restored_dir), check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    restored = start_local(restored_dir)
    try:
        for repo, tag, digest, blobs in before:
            _pull_verified(restored, repo, tag, digest, blobs)
    finally:
        restored.stop()


def test_backup_refuses_a_non_empty_directory(tmp_path: Path):
    data = tmp_path / "data"
    start_local(data).stop()
    target = tmp_path / "used"
    target.mkdir()
    (target / "something").write_text("x")
    refused = run_moorage("backup", str(target), "--data-dir", str(data), check=False)
    assert refused.returncode == 2 and "not empty" in refused.stderr


def test_backup_of_a_postgresql_registry_prints_the_procedure(tmp_path: Path):
    refused = run_moorage("backup", str(tmp_path / "b"), "--database",
                          "postgresql://moorage@127.0.0.1:1/moorage", check=False)
    assert refused.returncode == 2
    assert "pg_dump" in refused.stderr and "versioning" in refused.stderr
    assert not (tmp_path / "b").exists()
