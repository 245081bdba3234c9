"""Group commit on the embedded database: a write returns only after an fsync of the WAL that
began after its commit, concurrent writers share fsyncs, and `fsync = false` skips them."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from sqlalchemy import text

from moorage.metadata import durability
from moorage.metadata.engine import WAL_SYNCS, make_engine, sqlite_url
from moorage.metadata.migrate import upgrade
from moorage.metadata.uow import Database


class _Disk:
    """os.fsync, slowed down like a busy disk and recorded (start, end, inode)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[tuple[float, float, int]] = []
        self.lock = threading.Lock()

    def __call__(self, fd: int) -> None:
        started = time.monotonic()
        time.sleep(self.seconds)
        os.fsync(fd)
        with self.lock:
            self.calls.append((started, time.monotonic(), os.fstat(fd).st_ino))


def _database(tmp_path: Path, durable: bool = True) -> tuple[Database, _Disk]:
    url = sqlite_url(tmp_path)
    engine = make_engine(url, durable=durable)
    upgrade(engine)
    disk = _Disk(0.02)
    if durable:
        WAL_SYNCS[engine]._fsync = disk
    return Database(engine), disk


def _write(db: Database, i: int) -> tuple[float, float]:
    with db.write() as uow:
        uow.conn.execute(text("INSERT INTO event_cursors (consumer, last_id, updated_at) "
                              "VALUES (:c, 0, 0)"), {"c": f"c{i}"})
        committing = time.monotonic()
    return committing, time.monotonic()


def test_a_write_returns_after_an_fsync_of_the_wal_that_began_after_its_commit(tmp_path):
    db, disk = _database(tmp_path)
    wal_inode = None
    for i in range(5):
        committed, returned = _write(db, i)
        wal_inode = os.stat(str(tmp_path / "moorage.db-wal")).st_ino
        covering = [c for c in disk.calls if c[0] >= committed and c[1] <= returned
                    and c[2] == wal_inode]
        assert covering, f"write {i} returned without an fsync of the WAL after its commit"


def test_concurrent_writers_share_fsyncs(tmp_path):
    db, disk = _database(tmp_path)
    _write(db, -1)
    before = len(disk.calls)
    threads = [threading.Thread(target=_write, args=(db, i)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wal_syncs = len(disk.calls) - before
    assert 1 <= wal_syncs < 16 / 2, f"{wal_syncs} fsyncs for 16 concurrent commits"


def test_without_fsync_no_sync_is_made(tmp_path, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(durability.os, "fsync", lambda fd: calls.append(fd))
    db, _ = _database(tmp_path, durable=False)
    _write(db, 0)
    assert calls == []
