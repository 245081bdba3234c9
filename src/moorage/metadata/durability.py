"""Group commit for the embedded SQLite database: a write is acknowledged only once its
commit is on disk, and one fsync covers every commit that finished before it began.

SQLite in WAL mode with `synchronous=FULL` fsyncs the WAL inside every commit, while the one
writer holds the lock: each push would wait for the disk alone and in turn. With
`synchronous=NORMAL` a commit only appends to the WAL (a power loss may drop it, though never
corrupt the database), so after the commit (and after the write lock is released) the writer
fsyncs the WAL file here; writers that committed meanwhile share that fsync. The WAL frames
on disk are exactly what recovery replays, so an acknowledged write survives a power loss as
it would under FULL. A checkpoint (which moves frames into the database file) fsyncs both
files itself, so a WAL file that was reset or removed holds nothing left to sync.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("moorage.metadata")


class WalSync:
    """Makes this process's committed SQLite writes durable before they are acknowledged."""

    def __init__(self, database_path: str, fsync: Callable[[int], None] = os.fsync) -> None:
        self.wal_path = database_path + "-wal"
        self._fsync = fsync
        self._cond = threading.Condition()
        self._committed = 0  # commits this process finished
        self._synced = 0  # of those, the ones an fsync has covered
        self._syncing = False
        self._fd: int | None = None
        self._identity: tuple[int, int, int] | None = None  # (pid, device, inode) of _fd

    def committed(self) -> None:
        """Return once every commit this process finished so far (the caller's too) is on
        disk; raises OSError when the disk refuses the fsync."""
        with self._cond:
            self._committed += 1
            ticket = self._committed
            while self._synced < ticket:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing, target = True, self._committed
                self._cond.release()
                try:
                    self._sync_wal()
                finally:
                    self._cond.acquire()
                    self._syncing = False
                    self._cond.notify_all()
                self._synced = max(self._synced, target)

    def _sync_wal(self) -> None:
        try:
            st = os.stat(self.wal_path)
        except FileNotFoundError:
            return  # the last connection checkpointed it away: the database file holds it all
        identity = (os.getpid(), st.st_dev, st.st_ino)
        if identity != self._identity:
            if self._fd is not None and self._identity and self._identity[0] == os.getpid():
                os.close(self._fd)
            try:
                self._fd = os.open(self.wal_path, os.O_RDONLY)
            except FileNotFoundError:
                return
            self._identity = identity
            # A new WAL file's directory entry must survive a power loss too.
            directory = os.open(os.path.dirname(self.wal_path) or ".", os.O_RDONLY)
            try:
                self._fsync(directory)
            finally:
                os.close(directory)
        assert self._fd is not None
        self._fsync(self._fd)
