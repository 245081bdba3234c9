"""Database engines: SQLite (embedded default, WAL) and PostgreSQL, one schema for both."""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event

if TYPE_CHECKING:
    from .durability import WalSync

# The group commit of each durable SQLite engine (read by metadata/base.py's write scope).
WAL_SYNCS: weakref.WeakKeyDictionary[Engine, WalSync] = weakref.WeakKeyDictionary()


def normalize_url(url: str) -> str:
    """A SQLAlchemy URL: `postgresql://` and `postgres://` mean psycopg 3."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


def sqlite_url(data_dir: Path) -> str:
    """The URL of the embedded database inside a data dir."""
    return f"sqlite:///{Path(data_dir) / 'moorage.db'}"


def make_engine(url: str, pool_size: int = 5, durable: bool = True) -> Engine:
    """An engine with the settings a registry needs on each backend. `durable`: a write on
    SQLite returns only once its commit is on disk (metadata/durability.py); PostgreSQL's own
    `synchronous_commit` decides there."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        # Reset on return only when a transaction is open (see _on_reset): reads never open one.
        engine = create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=False,
                               pool_reset_on_return=None)
        _tune_sqlite(engine)
        database = engine.url.database
        if durable and database and database != ":memory:":
            from .durability import WalSync

            WAL_SYNCS[engine] = WalSync(os.path.abspath(database))
    else:
        # Several workers on several nodes share the server's connection limit: keep the pool
        # of each worker small (a request holds a connection only for one short statement).
        engine = create_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
            pool_recycle=1800,
        )
    return engine


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # Commits do not wait for the disk inside the write lock; a durable engine syncs the
        # WAL after it, for several commits at once (metadata/durability.py).
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "reset")
    def _on_reset(dbapi_conn, _record, _state):  # type: ignore[no-untyped-def]
        # The driver is in autocommit mode (isolation_level None): a transaction is open only
        # after our BEGIN IMMEDIATE, and then a connection going back to the pool (a failed
        # COMMIT, say) must not keep the write lock. Reads skip the ROLLBACK round.
        if dbapi_conn.in_transaction:
            dbapi_conn.rollback()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # Writers take the lock up front: a deferred transaction that later upgrades to a
        # write fails with SQLITE_BUSY at once instead of waiting for busy_timeout.
        # Reads run without an explicit transaction: each SELECT is atomic on its own in WAL
        # mode, and skipping BEGIN/COMMIT halves the work on the manifest GET path.
        if conn.get_execution_options().get("write"):
            if conn.dispatch.before_cursor_execute:  # a listener (a test) counts statements
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:  # on the driver: the execution machinery costs more than the statement
                conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")
