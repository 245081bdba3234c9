"""What every query module shares: the engine, dialect-aware upserts, read and write scopes."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
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
HELD_READERS = 4  # threads that keep a read connection (the event loop's, a few workers')
_INHERITED: list[Connection] = []  # read connections a forked child must keep, never close
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
        # SQLite reads run without a transaction (each SELECT sees the latest commit), so a
        # thread may keep one connection for all its reads: a checkout and a return to the pool
        # cost more than the indexed read itself (the manifest GET path).
        # At most HELD_READERS threads keep one, so the pool always has connections to spare.
        self._readers = threading.local() if engine.dialect.name == "sqlite" else None
        self._held_readers = 0
        self._held_pid = os.getpid()
        self._held_guard = threading.Lock()
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
        if self._readers is None:
            with self._reader.connect() as conn:
                yield conn
            return
        held = self._thread_reader(self._readers)
        if held is None:
            with self._reader.connect() as conn:
                yield conn
            return
        try:
            yield held  # a domain error raised in the block (a 404, say) keeps the connection
        finally:
            try:
                if held.in_transaction():  # SQLAlchemy's bookkeeping: SQLite has none open
                    held.rollback()
            finally:
                if held.invalidated or held.closed or held.in_transaction():
                    self._drop_reader(self._readers, held)

    def _drop_reader(self, readers: threading.local, conn: Connection) -> None:
        """Stop reusing a connection that broke: the next read of this thread takes another."""
        readers.conn = None
        with self._held_guard:
            self._held_readers -= 1
        conn.close()

    def _thread_reader(self, readers: threading.local) -> Connection | None:
        """This thread's read connection (a new one after a fork: never share one across);
        None when enough threads hold one already."""
        conn: Connection | None = getattr(readers, "conn", None)
        pid = os.getpid()
        if conn is not None and readers.pid == pid and not conn.closed and not conn.invalidated:
            return conn
        if conn is not None and readers.pid != pid:
            _INHERITED.append(conn)  # closing a parent's SQLite connection in a child is unsafe
        if conn is None or readers.pid != pid:
            with self._held_guard:
                if self._held_pid != pid:
                    self._held_readers, self._held_pid = 0, pid
                if self._held_readers >= HELD_READERS:
                    return None
                self._held_readers += 1
        conn = self._reader.connect()
        readers.conn, readers.pid = conn, pid
        return conn


# A statement's SQLite form: its SQL and, per position, how to get the value (the caller's
# key and an index into its list, or None and a constant) and the type's bind processor.
Getter = tuple[str | None, int | None, Any, Callable[[Any], Any] | None]
Form = tuple[str, tuple[Getter, ...]]
FORMS_PER_STATEMENT = 256  # one per parameter shape (the lengths of IN lists)


class _Slot:
    """A placeholder value: which parameter (and which item of a list) a position takes."""

    __slots__ = ("index", "key")

    def __init__(self, key: str, index: int | None) -> None:
        self.key, self.index = key, index


class Prebuilt:
    """A hot-path statement compiled once. On SQLite it runs straight on the driver's cursor,
    inside the same transaction: SQLAlchemy's execution machinery costs ~10× an indexed SQLite
    statement, and a push runs a dozen of them inside the one-writer lock. Elsewhere (and when
    a cursor-event listener is installed, e.g. a test counting statements) it is a plain
    `conn.execute`. Statements with Python column defaults always take the plain path."""

    __slots__ = ("_compiled", "statements")

    def __init__(self, statements: Any) -> None:
        # One statement for every dialect, or {dialect name: statement} (from `per_dialect`).
        self.statements: dict[str, Any] = (
            statements if isinstance(statements, dict)
            else {"sqlite": statements, "postgresql": statements}
        )
        self._compiled: dict[tuple[Any, ...], Form | None] = {}

    def _sqlite_form(self, conn: Connection, shape: tuple[Any, ...]) -> Form | None:
        keys = [k if isinstance(k, str) else k[0] for k in shape]
        compiled: Any = self.statements["sqlite"].compile(dialect=conn.dialect, column_keys=keys)
        form: Form | None = None
        if (compiled.positiontup is not None and not compiled.literal_execute_params
                and not getattr(compiled, "insert_prefetch", None)
                and not getattr(compiled, "update_prefetch", None)):
            slots: dict[str, Any] = {}
            for k in shape:
                if isinstance(k, str):
                    slots[k] = _Slot(k, None)
                else:  # an IN list of k[1] items
                    slots[k[0]] = [_Slot(k[0], i) for i in range(k[1])]
            expanded = compiled.construct_expanded_state(slots)
            processors = {**compiled._bind_processors, **expanded.processors}
            getters: list[Getter] = []
            for name in expanded.positiontup:
                value = expanded.parameters[name]
                proc = processors.get(name)
                if isinstance(value, _Slot):
                    getters.append((value.key, value.index, None, proc))
                else:  # a constant the statement carries (`refs + 1`)
                    getters.append((None, None, proc(value) if proc else value, None))
            form = (expanded.statement, tuple(getters))
        if len(self._compiled) >= FORMS_PER_STATEMENT:
            self._compiled.clear()
        self._compiled[shape] = form
        return form

    def _raw(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, Form] | None:
        if conn.dialect.name != "sqlite" or conn.dispatch.before_cursor_execute:
            return None
        shape = tuple(k if type(v) is not list else (k, len(v)) for k, v in params.items())
        form = self._compiled[shape] if shape in self._compiled else self._sqlite_form(conn, shape)
        if form is None:
            return None
        return conn.connection.dbapi_connection, form

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row the statement returns (tuples)."""
        raw = self._raw(conn, params)
        if raw is None:
            return list(conn.execute(self.statements[conn.dialect.name], params))
        driver, form = raw
        try:
            found: list[Any] = driver.execute(form[0], _values(form, params)).fetchall()
            return found
        except sqlite3.Error as exc:
            raise _wrapped(exc, form[0], params) from exc

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first column of the first row, None without a row."""
        found = self.rows(conn, params)
        return found[0][0] if found else None

    def run(self, conn: Connection, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
            ) -> int:
        """Execute for one parameter set or (executemany) several; the rows changed."""
        batch: Sequence[Mapping[str, Any]] | None = None if isinstance(params, Mapping) else params
        first: Mapping[str, Any] = params if isinstance(params, Mapping) else params[0]
        raw = self._raw(conn, first)
        if raw is None:
            statement = self.statements[conn.dialect.name]
            return int(conn.execute(statement, params).rowcount)
        driver, form = raw
        try:
            if batch is not None:
                cursor = driver.executemany(form[0], [_values(form, p) for p in batch])
            else:
                cursor = driver.execute(form[0], _values(form, first))
        except sqlite3.Error as exc:
            raise _wrapped(exc, form[0], first) from exc
        return int(cursor.rowcount)


def _values(form: Form, params: Mapping[str, Any]) -> list[Any]:
    """The positional parameters of `form`, through the column types' bind processors."""
    out = []
    for key, index, constant, proc in form[1]:
        if key is None:
            out.append(constant)
            continue
        value = params[key] if index is None else params[key][index]
        out.append(value if proc is None or value is None else proc(value))
    return out


def _wrapped(exc: Exception, sql: str, params: Any) -> Exception:
    """A driver error as SQLAlchemy raises it (callers catch its IntegrityError, say)."""
    from sqlalchemy.exc import DBAPIError

    return DBAPIError.instance(sql, params, exc, sqlite3.Error)
