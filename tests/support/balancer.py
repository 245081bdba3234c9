"""A round-robin TCP load balancer for tests: every new connection goes to the next node.

`Balancer(ports).start()` runs this module (`python -m support.balancer`) as a child process on
127.0.0.1 (its own interpreter, so relaying bytes does not compete with the test for the GIL) and
`stop()` ends it by PID.
Bytes are relayed unchanged, half-closes included, so HTTP behaves as it does without it; a node
that refuses the connection is skipped, like a balancer's failed health check.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from support.servers import free_port

CHUNK = 256 * 1024
TESTS = Path(__file__).resolve().parents[1]


@dataclass
class Balancer:
    """The balancer child process in front of `upstreams` (ports on 127.0.0.1)."""

    upstreams: list[int]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> Balancer:
        """Start it and wait until it accepts connections."""
        cmd = [sys.executable, "-m", "support.balancer", "--port", str(self.port),
               *map(str, self.upstreams)]
        self.proc = subprocess.Popen(cmd, start_new_session=True, cwd=TESTS)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"balancer exited early with {self.proc.returncode}")
            try:
                # A probe connection takes a turn of the rotation; harmless.
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("balancer did not start")

    def stop(self) -> None:
        """SIGTERM by PID (SIGKILL if it does not exit)."""
        if self.proc is None:
            return
        from support.backends import stop_process  # here: the child process runs this file too

        stop_process(self.proc, signal.SIGTERM, 10)
        self.proc = None


# -- the child process -------------------------------------------------------------------------


async def _relay(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> bool:
    """Copy until EOF, then half-close `dst`; False when a side broke instead."""
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
        return True
    except (ConnectionError, OSError):
        return False


class _RoundRobin:
    def __init__(self, upstreams: list[int]) -> None:
        self.upstreams = upstreams
        self.turn = 0
        self.tasks: set[asyncio.Task] = set()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in self.upstreams:
            port = self.upstreams[self.turn % len(self.upstreams)]
            self.turn += 1
            try:
                return await asyncio.open_connection("127.0.0.1", port, limit=CHUNK)
            except OSError:
                continue
        return None

    async def handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.tasks.add(task := asyncio.current_task())  # type: ignore[arg-type]
        try:
            upstream = await self._connect()
            if upstream is None:
                c_writer.transport.abort()
                return
            u_reader, u_writer = upstream

            async def upward() -> None:
                # A client that breaks off (reset) must look the same to the node.
                if not await _relay(c_reader, u_writer):
                    u_writer.transport.abort()

            up = asyncio.create_task(upward())
            # The node's answer decides the end: once it has closed, so does the client side.
            if not await _relay(u_reader, c_writer):
                c_writer.transport.abort()
            up.cancel()
            u_writer.close()
            c_writer.close()
        except asyncio.CancelledError:
            c_writer.transport.abort()
        finally:
            self.tasks.discard(task)  # type: ignore[arg-type]


async def _serve(port: int, upstreams: list[int]) -> None:
    balancer = _RoundRobin(upstreams)
    server = await asyncio.start_server(balancer.handle, "127.0.0.1", port, limit=CHUNK,
                                        reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    for task in list(balancer.tasks):
        task.cancel()
    await asyncio.gather(*balancer.tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("upstreams", type=int, nargs="+")
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.upstreams))


if __name__ == "__main__":
    main()
