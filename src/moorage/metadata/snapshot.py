"""A consistent copy of the embedded SQLite database while the server writes to it, and the
few facts a backup records about a copy (SQLite only: PostgreSQL has pg_dump)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

DB_FILE = "moorage.db"


def sqlite_snapshot(source: Path, target: Path) -> None:
    """Copy the database at `source` to a new file `target` as of one instant (SQLite's online
    backup in a single step: one read transaction, so writers never see it and it sees no
    half-written state)."""
    with closing(sqlite3.connect(source, timeout=60)) as src, \
            closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it


def blob_rows(database: Path) -> Iterator[tuple[str, int, str]]:
    """(digest, size, storage key) of every blob row of the SQLite file `database`."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        yield from conn.execute("SELECT digest, size, storage_key FROM blobs ORDER BY digest")


def counts(database: Path) -> dict[str, int]:
    """Rows per table that a backup's manifest reports."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        return {table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in ("repositories", "blobs", "manifests", "tags")}


def drop_unreferenced_blobs(database: Path, digests: list[str]) -> list[str]:
    """Delete the rows of blobs `digests` from the copy at `database` where no manifest
    references them; returns those that are referenced (and so were kept)."""
    kept: list[str] = []
    with closing(sqlite3.connect(database)) as conn, conn:
        for digest in digests:
            used = conn.execute("SELECT 1 FROM manifest_references WHERE digest = ? LIMIT 1",
                                (digest,)).fetchone()
            if used:
                kept.append(digest)
                continue
            conn.execute("DELETE FROM repository_blobs WHERE digest = ?", (digest,))
            conn.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
    return kept
