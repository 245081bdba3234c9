"""`moorage backup DIR` / `moorage restore DIR --data-dir NEW` for the embedded default.

A backup is the SQLite database as of one instant (taken while the server runs) plus the blob
files its rows name, hard-linked when DIR is on the same filesystem; `backup.json` records the
counts and checksums that restore verifies. The snapshot comes first, the files second: a blob
that a collector removed in between was garbage already, so its row is dropped from the copy
(nothing in the copy references it). PostgreSQL + S3 registries are backed up with their own
tools (see SCALE_OUT_PROCEDURE).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..auth.sealing import KEY_FILE
from ..config import Settings
from ..metadata import snapshot
from ..progress import Progress, silent
from ..storage.base import BlobStore
from ..storage.filesystem import link_or_copy

MANIFEST = "backup.json"
FORMAT = 1

SCALE_OUT_PROCEDURE = """\
This registry keeps its metadata in PostgreSQL and/or its blobs in S3; `moorage backup` copies
only the embedded default (SQLite + files in the data dir). Back it up with their tools:
  1. Blobs first: enable versioning on the bucket (or copy the prefix with `aws s3 sync` /
     `rclone copy`); blobs are immutable and written under fresh keys, so a copy taken before
     the database dump holds every blob the dump names.
  2. Then the metadata: pg_dump --format=custom --file moorage.dump "$MOORAGE_DATABASE_URL".
  3. Keep MOORAGE_SECRETS_KEY with them (sealed upstream and webhook secrets need it).
Restore: pg_restore into an empty database, restore the bucket prefix (or point at the copy),
run `moorage db upgrade`, then `moorage check` to verify the two agree."""


class BackupError(Exception):
    """A backup or restore that cannot be made, with the reason a user can act on."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message, self.exit_code = message, exit_code


@dataclass
class BackupReport:
    """What a backup holds (also what restore found)."""

    directory: str
    counts: dict[str, int]
    blob_bytes: int
    linked: int
    copied: int
    dropped: list[str]  # rows of blobs collected while the backup ran (garbage, left out)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def backup(settings: Settings, store: BlobStore, target: Path,
           progress: Progress | None = None) -> BackupReport:
    """Write a consistent backup of the embedded registry of `settings` into empty `target`."""
    if settings.is_scaled_out or settings.storage_url:
        raise BackupError(SCALE_OUT_PROCEDURE, 2)
    tick = progress or silent
    _require_empty(target, "backup directory")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(target, 0o700)  # the copy holds the secrets key and password hashes
    source = Path(settings.data_dir)
    db = target / snapshot.DB_FILE
    snapshot.sqlite_snapshot(source / snapshot.DB_FILE, db)
    if (source / KEY_FILE).is_file():
        shutil.copy2(source / KEY_FILE, target / KEY_FILE)
    rows = list(snapshot.blob_rows(db))
    linked = copied = total_bytes = 0
    gone: list[str] = []
    tick("blobs", 0, len(rows))
    for done, (digest, size, key) in enumerate(rows, 1):
        path = store.blob_path(key)
        if path is None:
            raise BackupError("the blob store is not local files: see `moorage backup --help`", 2)
        try:
            if link_or_copy(Path(path), target / key):
                linked += 1
            else:
                copied += 1
            total_bytes += size
        except FileNotFoundError:
            gone.append(digest)
        tick("blobs", done, len(rows))
    if gone:
        referenced = snapshot.drop_unreferenced_blobs(db, gone)
        if referenced:
            raise BackupError(f"blobs of the snapshot are missing from storage: "
                              f"{', '.join(referenced)} (run `moorage check`)")
    counts = snapshot.counts(db)
    manifest = {
        "format": FORMAT, "moorage": __version__, "created_at": time.time(),
        "counts": counts, "blob_bytes": total_bytes,
        "database_sha256": _file_sha256(db), "blobs_sha256": _blobs_sha256(db),
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return BackupReport(str(target), counts, total_bytes, linked, copied, gone)


def restore(source: Path, data_dir: Path, progress: Progress | None = None) -> BackupReport:
    """Make `data_dir` (absent or empty) a registry holding the backup in `source`, after
    verifying the backup's checksums."""
    tick = progress or silent
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not a moorage backup ({MANIFEST}: {exc})", 2) from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r} is not {FORMAT}", 2)
    _require_empty(data_dir, "--data-dir")
    db = source / snapshot.DB_FILE
    if _file_sha256(db) != manifest["database_sha256"]:
        raise BackupError(f"{db} does not match its checksum in {MANIFEST}: the backup is damaged")
    if _blobs_sha256(db) != manifest["blobs_sha256"]:
        raise BackupError(f"the blob list of {db} does not match {MANIFEST}")
    rows = list(snapshot.blob_rows(db))
    for digest, size, key in rows:
        path = source / key
        if not path.is_file() or path.stat().st_size != size:
            raise BackupError(f"blob {digest} ({key}) is missing or damaged in the backup")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(db, data_dir / snapshot.DB_FILE)
    if (source / KEY_FILE).is_file():
        shutil.copy2(source / KEY_FILE, data_dir / KEY_FILE)
    linked = copied = 0
    tick("blobs", 0, len(rows))
    for done, (_digest, _size, key) in enumerate(rows, 1):
        if link_or_copy(source / key, data_dir / key):
            linked += 1
        else:
            copied += 1
        tick("blobs", done, len(rows))
    (data_dir / "uploads").mkdir(exist_ok=True)
    return BackupReport(str(data_dir), manifest["counts"], manifest["blob_bytes"], linked,
                        copied, [])


def _require_empty(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BackupError(f"{what} {path} is not empty: give a new or empty directory", 2)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _blobs_sha256(db: Path) -> str:
    digest = hashlib.sha256()
    for row in snapshot.blob_rows(db):
        digest.update(f"{row[0]} {row[1]} {row[2]}\n".encode())
    return digest.hexdigest()
