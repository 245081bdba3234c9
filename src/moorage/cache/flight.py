"""One upstream fetch per cold blob, however many clients ask for it at once.

In a process, the first request for a blob starts a `Flight`: a task that GETs the blob from
the upstream once and tees every chunk into a registry upload (verified and committed at the
end) and into a spool file on local disk, from which every waiting client (the first one
included) is served as the bytes arrive. Across workers and nodes a short lease row in the
database says who is fetching: the others wait until the blob is stored, then serve it from
storage. The last byte goes to clients only once the digest is verified; on a mismatch the
stored copy is discarded and their connections are cut.

A small fetch (a manifest) goes through `FlightDeck.once`: the same lease across processes, and
in a process the later callers await the first one's task; nothing is streamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path

log = logging.getLogger(__name__)
READ_CHUNK = 256 * 1024
POLL_SECONDS = 0.2


class FlightFailed(Exception):
    """The fetch broke after clients were sent bytes: their connections are cut."""


class Flight:
    """The state of one blob's fetch that every client of it in this process follows."""

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self.size: int | None = None
        self.written = 0
        self.streaming = False  # bytes arrive in the spool (False: another worker fetches)
        self.started = asyncio.Event()  # size known, or failed, or fetched elsewhere
        self.finished = asyncio.Event()
        self.error: BaseException | None = None
        self.readers = 0
        self._changed = asyncio.Event()

    def leave(self) -> None:
        """A client is done with the flight; the last one out (after the end) drops the spool."""
        self.readers -= 1
        self.drop_spool()

    def drop_spool(self) -> None:
        if self.readers <= 0 and self.finished.is_set():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.spool)

    def moved(self) -> None:
        """Wake every follower: more bytes, the end, or an error."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self) -> None:
        await self._changed.wait()

    def fail(self, exc: BaseException) -> None:
        self.error = exc
        self.started.set()
        self.finished.set()
        self.moved()

    def succeed(self) -> None:
        self.started.set()
        self.finished.set()
        self.moved()

    async def follow(self) -> AsyncGenerator[bytes, None]:
        """The blob's bytes from the spool as they arrive; the last one only after the digest
        is verified (FlightFailed when it was not)."""
        with open(self.spool, "rb") as f:  # noqa: ASYNC230 - a local file opens at once
            sent = 0
            size = self.size or 0
            while True:
                ready = self.written if self.finished.is_set() else min(self.written, size - 1)
                if self.error is not None:
                    raise FlightFailed(str(self.error))
                if sent < ready:
                    data = f.read(min(READ_CHUNK, ready - sent))
                    if not data:
                        raise FlightFailed("the spool file ended early")
                    sent += len(data)
                    yield data
                    continue
                if self.finished.is_set():
                    return
                await self.wait_change()


Fetch = Callable[[Flight, Callable[[bytes], None]], Awaitable[None]]


class FlightDeck:
    """The flights of one process, by key, and the cross-process leases that back them."""

    def __init__(self, spool_dir: Path, take: Callable[[str, str, float], bool],
                 release: Callable[[str, str], None], held: Callable[[str], bool],
                 lease_seconds: float = 30.0) -> None:
        self.spool_dir = spool_dir
        self._take, self._release, self._held = take, release, held
        self.lease_seconds = lease_seconds
        self.owner = uuid.uuid4().hex
        self._flights: dict[str, Flight] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._once: dict[str, asyncio.Future[None]] = {}

    async def once(self, key: str, work: Callable[[], Awaitable[None]],
                   stored: Callable[[], Awaitable[bool]]) -> None:
        """Run `work` (which stores something) once for every caller of `key` in every
        process: the lease holder works, the others wait until `stored()`; its error is theirs
        in this process (another process's callers try again once its lease is gone)."""
        task = self._once.get(key)
        if task is None:
            task = asyncio.ensure_future(self._once_run(key, work, stored))
            self._once[key] = task
            task.add_done_callback(lambda _: self._once.pop(key, None))
        await asyncio.shield(task)

    async def _once_run(self, key: str, work: Callable[[], Awaitable[None]],
                        stored: Callable[[], Awaitable[bool]]) -> None:
        while True:
            if await asyncio.to_thread(self._take, key, self.owner,
                                       time.time() + self.lease_seconds):
                try:
                    # Stored by a holder that released between our caller's look and our
                    # take: the work is done (else it runs twice, an upstream GET too many).
                    if not await stored():
                        await work()
                finally:
                    await asyncio.to_thread(self._release, key, self.owner)
                return
            while await asyncio.to_thread(self._held, key):
                if await stored():
                    return
                await asyncio.sleep(POLL_SECONDS)
            if await stored():
                return

    def join(self, key: str, fetch: Fetch, stored: Callable[[], Awaitable[bool]]) -> Flight:
        """The flight of `key`, started (running `fetch`) when none is in the air here; the
        caller is one of its readers until it calls `leave()`."""
        flight = self._flights.get(key)
        if flight is not None:
            flight.readers += 1
            return flight
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        flight = Flight(self.spool_dir / f"{uuid.uuid4().hex}.spool")
        flight.readers = 1
        self._flights[key] = flight
        task = asyncio.create_task(self._run(key, flight, fetch, stored))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return flight

    async def _run(self, key: str, flight: Flight, fetch: Fetch,
                   stored: Callable[[], Awaitable[bool]]) -> None:
        try:
            while True:
                until = time.time() + self.lease_seconds
                if await asyncio.to_thread(self._take, key, self.owner, until):
                    await self._lead(key, flight, fetch)
                    return
                # Another worker or node fetches it: wait until it is stored (or its lease
                # runs out, and we try to take over).
                while await asyncio.to_thread(self._held, key):
                    if await stored():
                        flight.succeed()
                        return
                    await asyncio.sleep(POLL_SECONDS)
                if await stored():
                    flight.succeed()
                    return
        except BaseException as exc:
            flight.fail(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._flights.pop(key, None)
            flight.finished.set()
            flight.drop_spool()

    async def _lead(self, key: str, flight: Flight, fetch: Fetch) -> None:
        renewer = asyncio.create_task(self._renew(key))
        spool = open(flight.spool, "wb")  # noqa: ASYNC230, SIM115 - local, closed below
        flight.streaming = True

        def tee(data: bytes) -> None:
            spool.write(data)
            spool.flush()
            flight.written += len(data)
            flight.moved()

        try:
            await fetch(flight, tee)
            flight.succeed()
        finally:
            spool.close()
            renewer.cancel()
            await asyncio.to_thread(self._release, key, self.owner)

    async def _renew(self, key: str) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            await asyncio.to_thread(self._take, key, self.owner, time.time() + self.lease_seconds)
