"""What every query module shares: the engine, dialect-aware upserts, read and write scopes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

_SQLITE_WRITE_LOCK = threading.Lock()


class StoreBase:
    """Holds the engine; `_write()` is one write transaction, `_read()` a plain connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        # Reads are single statements: on PostgreSQL, autocommit spares a BEGIN and a ROLLBACK
        # round trip per read (SQLite reads already run without a transaction).
        self._reader = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._reader.connect() as conn:
            yield conn
