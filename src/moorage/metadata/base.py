"""What every query module shares: the engine, dialect-aware upserts, read and write scopes."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .schema import repositories

Dialects = dict[str, Any]
_LOCK_SHARED = (
    select(repositories.c.id).where(repositories.c.id == bindparam("id")).with_for_update(read=True)
)
_LOCK_EXCLUSIVE = (
    select(repositories.c.id).where(repositories.c.id == bindparam("id")).with_for_update()
)


def per_dialect(build: Callable[[Any], Any]) -> Dialects:
    """A statement built once per dialect from `build(insert)` (the dialect's insert, for
    `ON CONFLICT`): `stmt[conn.dialect.name]`."""
    return {"sqlite": build(sqlite_insert), "postgresql": build(pg_insert)}


def column_text(value: object, limit: int) -> object:
    """A string as every engine stores it: no NUL (PostgreSQL refuses one in text), no lone
    surrogate (UTF-8 cannot encode one), at most `limit` characters. Other values pass."""
    if not isinstance(value, str):
        return value
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value[:limit]


class SqliteWriteLock:
    """One writer at a time for an SQLite file, across threads and processes.

    SQLite already allows a single writer, but waiters poll in its busy handler with sleeps of
    up to 100 ms; under concurrent pushes that polling, not the work, is what takes the time. A
    blocking flock queues writers in the kernel and wakes the next one at once.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid: int | None = None

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            if self._pid != os.getpid():  # a forked worker needs its own open file description
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            assert self._fd is not None
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            assert self._fd is not None
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


_SQLITE_LOCKS: dict[str, SqliteWriteLock] = {}
_SQLITE_LOCKS_GUARD = threading.Lock()


def _write_lock(engine: Engine) -> AbstractContextManager[None]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return nullcontext()
    path = os.path.abspath(database) + ".writelock"
    with _SQLITE_LOCKS_GUARD:
        return _SQLITE_LOCKS.setdefault(path, SqliteWriteLock(path))


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
        self._write_lock = _write_lock(engine)
        from .engine import WAL_SYNCS

        self._wal_sync = WAL_SYNCS.get(engine)

    def _lock_repository(self, conn: Connection, repo_id: int, exclusive: bool) -> None:
        """PostgreSQL: pushes share a repository's row lock, a GC sweep takes it alone, so a
        sweep decides on a graph no push is changing (SQLite: the write lock already does)."""
        if self.engine.dialect.name != "postgresql":
            return
        conn.execute(_LOCK_EXCLUSIVE if exclusive else _LOCK_SHARED, {"id": repo_id})

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with (
            self._write_lock,
            self.engine.connect().execution_options(write=True) as conn,
            conn.begin(),
        ):
            yield conn
        if self._wal_sync is not None:
            self._wal_sync.committed()  # acknowledged means on disk

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._reader.connect() as conn:
            yield conn
