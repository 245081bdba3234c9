"""Helpers of the lifecycle tests: push/pull whole images and check every byte."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from integration.helpers import (
    ACCEPT_MANIFESTS,
    Blob,
    Manifest,
    blob_url,
    describe,
    digest_of,
    http,
    manifest_url,
    push_tree,
)


def pull_and_verify(reg, repo: str, ref: str) -> Manifest | None:  # type: ignore[no-untyped-def]
    """GET a manifest and every blob and child it references; assert every digest."""
    import json

    r = http.get(manifest_url(reg, repo, ref), headers={"Accept": ACCEPT_MANIFESTS})
    assert r.status_code == 200, describe(r)
    digest = r.headers["Docker-Content-Digest"]
    assert digest_of(r.content) == digest
    doc = json.loads(r.content)
    for child in doc.get("manifests", []):
        pull_and_verify(reg, repo, child["digest"])
    for d in ([doc["config"]] if "config" in doc else []) + doc.get("layers", []):
        b = http.get(blob_url(reg, repo, d["digest"]))
        assert b.status_code == 200, f"{repo}@{d['digest']}: {describe(b)}"
        assert digest_of(b.content) == d["digest"], f"{repo}@{d['digest']} corrupt"
    return None


def store_consistency(data_dir: Path) -> dict[str, list[str]]:
    """Problems in a data dir: blob rows without bytes, references without rows."""
    db = sqlite3.connect(data_dir / "moorage.db")
    try:
        problems: dict[str, list[str]] = {"missing_bytes": [], "dangling_refs": []}
        for digest, key in db.execute("SELECT digest, storage_key FROM blobs"):
            if not (data_dir / key).is_file():
                problems["missing_bytes"].append(digest)
        for (digest,) in db.execute(
            "SELECT DISTINCT digest FROM manifest_references WHERE kind = 'blob' "
            "AND digest NOT IN (SELECT digest FROM blobs)"
        ):
            problems["dangling_refs"].append(digest)
        return problems
    finally:
        db.close()


def count(data_dir: Path, sql: str) -> int:
    db = sqlite3.connect(data_dir / "moorage.db")
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


def blob_files(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "blobs").rglob("*") if p.is_file()}


__all__ = ["Blob", "blob_files", "count", "pull_and_verify", "push_tree", "store_consistency"]
