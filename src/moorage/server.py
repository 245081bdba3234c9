"""`moorage serve`: prepare the data dir, bind once, run N worker processes sharing the socket."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
from pathlib import Path

from aiohttp import web

from . import supervisor, tls
from .bootstrap import preload, prepare
from .config import Settings
from .logs import setup_logging
from .metadata.migrate import SchemaNotCurrent
from .metrics import files as metrics_files

log = logging.getLogger("moorage.server")


def bind(settings: Settings) -> socket.socket:
    """The listening socket, created before the workers fork so they all accept on it."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def exec_serve(settings: Settings) -> int:
    """Serve in this process after replacing its program with a lean interpreter.

    The CLI's parser (Typer, Click, Pydantic) stays in no serving process: about 12 MiB less
    in the whole process tree. The settings travel through an inherited pipe, never argv or the
    environment, since they may hold secrets. Falls back to serving in place if exec fails.
    """
    try:
        settings_fd = supervisor.settings_pipe(settings.to_json())
    except ValueError:
        return serve(settings)
    try:
        supervisor.exec_entry(_SERVE_ENTRY, [str(settings_fd)], settings.listen)
    except OSError:
        os.close(settings_fd)
    return serve(settings)


_SERVE_ENTRY = "import sys; from moorage.server import main; sys.exit(main(int(sys.argv[1])))"


def main(settings_fd: int) -> int:
    """`exec_serve`'s entry: read the settings from the pipe and serve."""
    return serve(Settings.from_json(supervisor.read_settings(settings_fd)))


def worker_entry(sock_fd: int, settings_fd: int) -> int:
    """A worker the supervisor started afresh (after one died): serve on the inherited socket."""
    settings = Settings.from_json(supervisor.read_settings(settings_fd))
    return _run_worker(settings, socket.socket(fileno=sock_fd))


def serve(settings: Settings) -> int:
    """Run the registry until SIGTERM/SIGINT; returns the exit code."""
    setup_logging(settings.log_level, settings.log_format)
    settings = _absolute(settings)
    _tune_malloc()
    metrics_files.reset(settings.data_dir)  # before any worker writes its values there
    prepared = _prepare_apart(settings)
    if prepared != 0:
        return prepared
    try:
        tls.server_context(settings)  # a pair that does not load stops us here, not each worker
    except ValueError as exc:
        print(f"moorage: {exc}", file=sys.stderr, flush=True)
        return 2
    sock = bind(settings)
    if not settings.auth:
        print(
            "WARNING: authentication is OFF (--no-auth): anyone who can reach this port can "
            "push, pull and delete anything. Use only for throwaway local registries.",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"moorage listening on {settings.scheme}://{settings.listen} ({settings.workers} worker"
        f"{'s' if settings.workers != 1 else ''}), {_describe(settings)}",
        file=sys.stderr,
        flush=True,
    )
    if settings.workers == 1:
        return _run_worker(settings, sock)
    # Import what every worker runs before forking them, and keep the collector off those
    # objects, so the workers share those pages instead of each holding its own copy.
    preload(settings)
    gc.freeze()
    return _fork_workers_and_supervise(settings, sock)


def _fork_workers_and_supervise(settings: Settings, sock: socket.socket) -> int:
    """Fork the workers from this fully imported process, then become the lean supervisor."""
    # Blocked until the supervisor's handlers are in place (the mask survives fork and exec):
    # a stop signal in between is delivered late, never lost and never fatal half-way.
    signal.pthread_sigmask(signal.SIG_BLOCK, supervisor.HELD_SIGNALS)
    pids = [_fork_worker(settings, sock) for _ in range(settings.workers)]
    settings_fd = supervisor.settings_pipe(settings.to_json())
    try:
        supervisor.exec_entry(supervisor.SUPERVISOR_ENTRY,
                              [str(sock.fileno()), str(settings_fd), ",".join(map(str, pids))],
                              settings.listen)
    except OSError:  # no exec: supervise from here, only without the memory saving
        os.close(settings_fd)
    return supervisor.Supervisor(settings, settings.to_json(), sock.fileno(), pids).run()


def _fork_worker(settings: Settings, sock: socket.socket) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker's loop handles it
        signal.pthread_sigmask(signal.SIG_UNBLOCK, supervisor.HELD_SIGNALS)
        code = _run_worker(settings, sock)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("worker failed")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# glibc's mallopt parameters (malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _tune_malloc() -> None:
    """Give freed stream buffers back to the kernel: glibc otherwise raises its mmap threshold
    after the first 4 MiB buffer is freed and keeps every later one on a per-thread heap, so a
    worker that took one big upload stayed ~20 MiB larger for good. Forked workers inherit it."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
        libc.mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # not glibc: its defaults are not this problem
        pass


def _prepare_apart(settings: Settings) -> int:
    """Run `prepare` in a short-lived child: the migration tooling (Alembic, Mako) it imports
    then never takes memory in the processes that serve. Returns its exit code."""
    proc = multiprocessing.get_context("fork").Process(target=_prepare_main, args=(settings,))
    proc.start()
    proc.join()
    return proc.exitcode or 0


def _prepare_main(settings: Settings) -> None:
    try:
        prepare(settings)
    except SchemaNotCurrent as exc:
        print(f"moorage: {exc}", file=sys.stderr, flush=True)
        sys.exit(3)


def _describe(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    from .metadata.engine import normalize_url

    if settings.database_url:
        db = make_url(normalize_url(settings.database_url)).render_as_string(hide_password=True)
    else:
        db = "SQLite"
    storage = settings.storage_url or "filesystem"
    if not settings.database_url and not settings.storage_url:
        return f"data in {settings.data_dir} (SQLite + filesystem)"
    return f"metadata in {db}, blobs in {storage}, data dir {settings.data_dir}"


def _absolute(settings: Settings) -> Settings:
    from dataclasses import replace

    return replace(settings, data_dir=Path(settings.data_dir).resolve())


def _run_worker(settings: Settings, sock: socket.socket) -> int:
    setup_logging(settings.log_level, settings.log_format)
    from .web.app import make_app

    async def main() -> None:
        app = make_app(settings)
        # No body timeout: a streamed multi-GB PATCH may take as long as it needs; idle
        # keep-alive connections close after keepalive_timeout.
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=settings.shutdown_timeout,
            keepalive_timeout=settings.keepalive_timeout,
        )
        await runner.setup()
        context = tls.server_context(settings)
        site = web.SockSite(runner, sock, ssl_context=context)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if context is not None:
            loop.add_signal_handler(signal.SIGHUP, tls.reload, context, settings)
        else:
            loop.add_signal_handler(signal.SIGHUP, lambda: None)
        await stop.wait()
        # Stop accepting, let in-flight requests finish; a streaming PATCH checkpoints what it
        # received and ends with a 503 (the app's on_shutdown hook), so none holds us up.
        await runner.cleanup()

    asyncio.run(main())
    return 0
