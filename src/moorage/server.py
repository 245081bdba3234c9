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
import time
from pathlib import Path

from aiohttp import web

from .bootstrap import preload, prepare
from .config import Settings
from .logs import setup_logging
from .metadata.migrate import SchemaNotCurrent

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


# The lean entry point `exec_serve` replaces the CLI with: it imports none of the CLI.
_ENTRY = "import sys; from moorage.server import main; sys.exit(main(int(sys.argv[1])))"
_PIPE_CAPACITY = 65536  # Linux's smallest pipe buffer: a write this size never blocks


def exec_serve(settings: Settings) -> int:
    """Serve in this process after replacing its program with a lean interpreter.

    The CLI's parser (Typer, Click, Pydantic) stays in no serving process: about 12 MiB less
    in the whole process tree. The settings travel through an inherited pipe, never argv or the
    environment, since they may hold secrets. Falls back to serving in place if exec fails.
    """
    payload = settings.to_json().encode()
    if len(payload) >= _PIPE_CAPACITY:
        return serve(settings)
    read_end, write_end = os.pipe()
    os.write(write_end, payload)
    os.close(write_end)
    os.set_inheritable(read_end, True)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        # The arguments after the descriptor only tell `ps` what this process is.
        os.execv(sys.executable, [sys.executable, "-c", _ENTRY, str(read_end), "moorage serve",
                                  "--listen", settings.listen])
    except OSError:
        os.close(read_end)
    return serve(settings)


def main(settings_fd: int) -> int:
    """`exec_serve`'s entry: read the settings from the pipe and serve."""
    with os.fdopen(settings_fd, "rb") as pipe:
        settings = Settings.from_json(pipe.read().decode())
    return serve(settings)


def serve(settings: Settings) -> int:
    """Run the registry until SIGTERM/SIGINT; returns the exit code."""
    setup_logging(settings.log_level, settings.log_format)
    settings = _absolute(settings)
    _tune_malloc()
    prepared = _prepare_apart(settings)
    if prepared != 0:
        return prepared
    sock = bind(settings)
    if not settings.auth:
        print(
            "WARNING: authentication is OFF (--no-auth): anyone who can reach this port can "
            "push, pull and delete anything. Use only for throwaway local registries.",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"moorage listening on http://{settings.listen} ({settings.workers} worker"
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
    return _supervise(settings, sock)


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


def _supervise(settings: Settings, sock: socket.socket) -> int:
    ctx = multiprocessing.get_context("fork")
    stopping = False

    def spawn() -> multiprocessing.process.BaseProcess:
        proc = ctx.Process(target=_worker_main, args=(settings, sock), daemon=False)
        proc.start()
        return proc

    workers = [spawn() for _ in range(settings.workers)]

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in workers:
            if proc.pid and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    restarts: list[float] = []
    while not stopping:
        for i, proc in enumerate(workers):
            if not proc.is_alive() and not stopping:
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < 60] + [now]
                if len(restarts) > 5 * settings.workers:
                    # Workers die as fast as they start: a broken setup, not a passing fault.
                    log.error("workers keep crashing; stopping", extra={"code": proc.exitcode})
                    on_signal(signal.SIGTERM, None)
                    break
                log.warning("worker exited, restarting", extra={"pid": proc.pid,
                                                                "code": proc.exitcode})
                time.sleep(min(0.1 * len(restarts), 2.0))
                workers[i] = spawn()
        time.sleep(0.2)
    if restarts and len(restarts) > 5 * settings.workers:
        exit_code = 1
    else:
        exit_code = 0
    deadline = time.monotonic() + settings.shutdown_timeout + 5
    for proc in workers:
        proc.join(max(deadline - time.monotonic(), 0.1))
        if proc.is_alive():
            proc.kill()
    log.info("stopped")
    return exit_code


def _worker_main(settings: Settings, sock: socket.socket) -> None:
    sys.exit(_run_worker(settings, sock))


def _run_worker(settings: Settings, sock: socket.socket) -> int:
    setup_logging(settings.log_level, settings.log_format)
    from .web.app import make_app

    async def main() -> None:
        app = make_app(settings)
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=settings.shutdown_timeout
        )
        await runner.setup()
        site = web.SockSite(runner, sock)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        # Stop accepting, let in-flight requests finish; a streaming PATCH checkpoints what it
        # received and ends with a 503 (the app's on_shutdown hook), so none holds us up.
        await runner.cleanup()

    asyncio.run(main())
    return 0
