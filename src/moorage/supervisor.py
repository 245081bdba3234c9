"""The supervisor of `moorage serve`'s workers, as a lean process that imports no server code.

`server.serve` forks the workers from a process that has imported the whole server, so they
share those pages, and then replaces itself with this program. The pages each worker changed
existed three times (the parent's original and two copies); now twice, and the parent's private
memory is gone. The supervisor only waits on its workers, restarts one that dies (a fresh
interpreter, `server.worker_entry`, sharing nothing) and stops them all on SIGTERM or SIGINT.
SIGHUP is passed on to every worker (each reloads its TLS certificate).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

from .config import Settings
from .logs import setup_logging
from .metrics import files as metrics_files

log = logging.getLogger("moorage.server")

WORKER_ENTRY = ("import sys; from moorage.server import worker_entry; "
                "sys.exit(worker_entry(int(sys.argv[1]), int(sys.argv[2])))")
SUPERVISOR_ENTRY = ("import sys; from moorage.supervisor import main; "
                    "sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Also held back around fork and exec: SIGHUP (reload the TLS certificate) would otherwise end a
# process that has no handler for it yet.
HELD_SIGNALS = (*STOP_SIGNALS, signal.SIGHUP)
_PIPE_CAPACITY = 65536  # Linux's smallest pipe buffer: a write this size never blocks


def settings_pipe(settings_json: str) -> int:
    """A readable, inheritable descriptor holding `settings_json` (secrets never go in argv or
    the environment)."""
    payload = settings_json.encode()
    if len(payload) >= _PIPE_CAPACITY:
        raise ValueError("settings too large for a pipe")
    read_end, write_end = os.pipe()
    os.write(write_end, payload)
    os.close(write_end)
    os.set_inheritable(read_end, True)
    return read_end


def read_settings(fd: int) -> str:
    """The settings JSON a `settings_pipe` carries."""
    with os.fdopen(fd, "rb") as pipe:
        return pipe.read().decode()


def exec_entry(entry: str, args: list[str], listen: str) -> None:
    """Replace this process by `python -c entry args…` (the trailing words only tell `ps` what
    the process is)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-c", entry, *args, "moorage serve", "--listen",
                              listen])


def main(sock_fd: int, settings_fd: int, worker_pids: str) -> int:
    """Supervise the workers `worker_pids` (comma-separated) serving on `sock_fd`."""
    text = read_settings(settings_fd)
    settings = Settings.from_json(text)
    setup_logging(settings.log_level, settings.log_format)
    return Supervisor(settings, text, sock_fd, [int(p) for p in worker_pids.split(",")]).run()


class Supervisor:
    """Waits on the workers, restarts the dead, stops them all on a stop signal."""

    def __init__(self, settings: Settings, settings_json: str, sock_fd: int,
                 workers: list[int]) -> None:
        self.settings, self.settings_json, self.sock_fd = settings, settings_json, sock_fd
        self.workers = set(workers)
        self.stopping = False
        self.restarts: list[float] = []

    def run(self) -> int:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_hangup)
        # The parent blocked these around the fork and exec, so none could be lost; a signal
        # that came meanwhile is delivered now, to the handlers above.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
        crashed = False
        while not self.stopping:
            for pid, code in self._reap():
                if self.stopping:
                    break
                now = time.monotonic()
                self.restarts = [t for t in self.restarts if now - t < 60] + [now]
                if len(self.restarts) > 5 * self.settings.workers:
                    # Workers die as fast as they start: a broken setup, not a passing fault.
                    log.error("workers keep crashing; stopping", extra={"code": code})
                    crashed = True
                    self._on_signal(signal.SIGTERM, None)
                    break
                log.warning("worker exited, restarting", extra={"pid": pid, "code": code})
                # Its counters go to the archive and its files away: the dir stays bounded.
                metrics_files.retire(pid)
                time.sleep(min(0.1 * len(self.restarts), 2.0))
                if self.stopping:  # a stop signal came meanwhile: no new worker to miss it
                    break
                self.workers.add(self._spawn())
            time.sleep(0.2)
        self._wait_all(time.monotonic() + self.settings.shutdown_timeout + 5)
        log.info("stopped")
        return 1 if crashed else 0

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self.stopping = True
        for pid in self.workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _on_hangup(self, _signum: int, _frame: object) -> None:
        log.info("SIGHUP: workers reload their TLS certificate")
        for pid in self.workers:
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:
                pass

    def _reap(self) -> list[tuple[int, int]]:
        """(pid, exit code) of every worker that ended since the last look."""
        ended: list[tuple[int, int]] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return ended
            if pid == 0:
                return ended
            if pid in self.workers:
                self.workers.discard(pid)
                metrics_files.mark_dead(pid)  # its in-flight gauges end with it
                ended.append((pid, os.waitstatus_to_exitcode(status)))

    def _spawn(self) -> int:
        """A fresh worker process on the shared socket."""
        settings_fd = settings_pipe(self.settings_json)
        pid = os.fork()
        if pid == 0:
            try:
                # Ignored until the new worker's loop handles it (a disposition exec keeps).
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                exec_entry(WORKER_ENTRY, [str(self.sock_fd), str(settings_fd)],
                           self.settings.listen)
            finally:
                os._exit(1)
        os.close(settings_fd)
        return pid

    def _wait_all(self, deadline: float) -> None:
        while self.workers and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        for pid in self.workers:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
