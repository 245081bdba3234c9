"""Helpers of the lifecycle tests: look inside a SQLite + filesystem data dir."""

from __future__ import annotations

import sqlite3
from pathlib import Path


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

