"""The SQLite pool resets a connection on return only when it holds a transaction: then it must."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from moorage.metadata.engine import make_engine, sqlite_url


def test_a_connection_returned_inside_a_transaction_releases_the_write_lock(tmp_path: Path):
    engine = make_engine(sqlite_url(tmp_path))
    try:
        raw = engine.raw_connection()
        raw.driver_connection.execute("CREATE TABLE t (x INTEGER)")
        raw.driver_connection.execute("BEGIN IMMEDIATE")
        raw.driver_connection.execute("INSERT INTO t VALUES (1)")
        raw.close()  # back to the pool with the write transaction open
        other = sqlite3.connect(tmp_path / "moorage.db", timeout=0, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # SQLITE_BUSY at once if the pool kept the lock
        assert other.execute("SELECT count(*) FROM t").fetchone() == (0,)
        other.rollback()
        other.close()
    finally:
        engine.dispose()

