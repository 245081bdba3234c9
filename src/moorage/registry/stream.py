"""Streaming a request body into an upload: hashed and written as it arrives, with checkpoints
and a graceful stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from ..oci.digest import Hasher
from ..storage.base import UploadWriter

# Bytes gathered before handing them to worker threads to hash and write. Big enough that the
# per-call overhead vanishes; one batch is being filled while the one before is written, and
# the parts are never joined into a copy, so an upload holds about twice this.
PUMP_BUFFER = 2 << 20
LEASE_RENEW_EVERY = 10.0
log = logging.getLogger(__name__)


class StopSignal:
    """Asks one streaming request to checkpoint and end (graceful shutdown)."""

    def __init__(self) -> None:
        self.task = asyncio.current_task()
        self.requested = False
        self.seen = False  # the pump has taken note of the request
        self.reading = False  # the request waits for its client right now
        self.woken = False  # request() cancelled that wait

    def request(self) -> None:
        """Ask; a request idly waiting for body bytes is woken up (cancelled) to stop now."""
        if self.requested:
            return
        self.requested = True
        if self.reading and self.task is not None:
            self.woken = True
            self.task.cancel()


class Interrupted(Exception):
    """The stream stopped on request after a checkpoint at `written` bytes."""

    def __init__(self, written: int) -> None:
        super().__init__(f"stopped after {written} bytes")
        self.written = written


_STOPPED = object()


async def pump(
    body: AsyncIterator[bytes],
    hasher: Hasher,
    writer: UploadWriter,
    renew: Callable[[], object] | None = None,
    checkpoint: Callable[[int], Awaitable[None]] | None = None,
    every: int = 0,
    stop: StopSignal | None = None,
) -> int:
    """Hash and write a body as it streams; the next buffer is read while a thread writes.

    With `checkpoint`, it is awaited with the bytes written so far once at least `every` more
    bytes were written (at the first point after that where the writer can checkpoint), when
    `stop` is requested, after which Interrupted is raised, and when the body breaks.
    """
    return await _Pump(body, hasher, writer, renew, checkpoint, every, stop).run()


class _Pump:
    def __init__(
        self,
        body: AsyncIterator[bytes],
        hasher: Hasher,
        writer: UploadWriter,
        renew: Callable[[], object] | None,
        checkpoint: Callable[[int], Awaitable[None]] | None,
        every: int,
        stop: StopSignal | None,
    ) -> None:
        self.body, self.hasher, self.writer = body.__aiter__(), hasher, writer
        self.renew, self.on_checkpoint, self.stop = renew, checkpoint, stop
        self.every = every if checkpoint is not None else 0
        self.loop = asyncio.get_running_loop()
        self.pending: asyncio.Future | None = None
        self.parts: list[bytes] = []
        self.buffered = self.total = self.since = 0
        self.last_renew = time.monotonic()

    async def run(self) -> int:
        try:
            while True:
                try:
                    part = await self._read()
                except Exception:
                    await self._keep()
                    raise
                if part is None:
                    break
                if part is not _STOPPED and part:
                    self.parts.append(part)  # type: ignore[arg-type]
                    self.buffered += len(part)  # type: ignore[arg-type]
                if self.stop is not None and self.stop.requested:
                    await self._flush()
                    if await self._until_checkpoint() == 0:
                        assert self.on_checkpoint is not None
                        await self.on_checkpoint(self.total)
                        raise Interrupted(self.total)
                    continue  # S3: the part under way needs its last bytes first
                if self.buffered >= PUMP_BUFFER:
                    await self._flush()
                    if self.renew is not None and (
                        time.monotonic() - self.last_renew > LEASE_RENEW_EVERY
                    ):
                        self.last_renew = time.monotonic()
                        await self.renew()  # type: ignore[misc]
            await self._flush()
            await self._settle()
        finally:
            if self.pending is not None:
                # Never close the writer under a running write.
                await asyncio.gather(self.pending, return_exceptions=True)
        return self.total

    async def _keep(self) -> None:
        """The body broke (the client went away): checkpoint what reached us, when the writer
        can, so the client's retry sends only the rest (a valid prefix is never lost)."""
        if self.on_checkpoint is None:
            return
        try:
            await self._flush()
            if self.total > 0 and await self._until_checkpoint() == 0:
                await self.on_checkpoint(self.total)
        except Exception:  # the body's own error is the one to report
            log.warning("could not keep the bytes of a broken upload", exc_info=True)

    async def _read(self) -> object:
        """The next part of the body; None at its end; _STOPPED once when asked to stop."""
        stop = self.stop
        if stop is None:
            return await anext(self.body, None)
        if stop.requested and not stop.seen:
            stop.seen = True  # from now on, read on until the writer can stop
            return _STOPPED
        stop.reading = True
        try:
            return await anext(self.body, None)
        except asyncio.CancelledError:
            if not stop.woken:
                raise
            stop.woken = False
            task = asyncio.current_task()
            if task is not None and task.uncancel() > 0:
                raise  # the request itself is cancelled too (shutdown timeout)
            stop.seen = True
            return _STOPPED
        finally:
            stop.reading = False

    async def _flush(self) -> None:
        if self.parts:
            parts, self.parts = self.parts, []
            self.buffered = 0
            await self._emit(parts)

    async def _emit(self, data: list[bytes]) -> None:
        """Sink the parts in `data`, cut where a checkpoint is due."""
        while True:
            limit: int | None = None
            if self.every and self.since >= self.every:
                left = await self._until_checkpoint()
                if left == 0:
                    assert self.on_checkpoint is not None
                    await self.on_checkpoint(self.total)
                    self.since = 0
                else:
                    limit = left
            if not data:
                return
            if limit is None and self.every:
                limit = self.every - self.since
            head, data = _split(data, limit)
            await self._sink(head)

    async def _sink(self, parts: list[bytes]) -> None:
        if self.pending is not None:
            await self.pending
        # Hashing and writing release the GIL: run them side by side, in order per stream.
        self.pending = asyncio.gather(
            self.loop.run_in_executor(None, _each, self.hasher.update, parts),
            self.loop.run_in_executor(None, _each, self.writer.write, parts),
        )
        size = sum(len(p) for p in parts)
        self.total += size
        self.since += size

    async def _settle(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            await pending

    async def _until_checkpoint(self) -> int:
        await self._settle()
        return self.writer.until_checkpoint()


def _each(sink: Callable[[bytes], None], parts: list[bytes]) -> None:
    for part in parts:
        sink(part)


def _split(parts: list[bytes], limit: int | None) -> tuple[list[bytes], list[bytes]]:
    """The first `limit` bytes of `parts` and the rest (all when None); only the one part a
    cut falls in is copied (the resumable hashers take bytes, not views)."""
    if limit is None:
        return parts, []
    head: list[bytes] = []
    for i, part in enumerate(parts):
        if limit == 0:
            return head, parts[i:]
        if limit >= len(part):
            head.append(part)
            limit -= len(part)
            continue
        head.append(part[:limit])
        return head, [part[limit:], *parts[i + 1:]]
    return head, []
