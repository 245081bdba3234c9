"""Runs due jobs with bounded concurrency: claims on the event loop's thread pool, each job in a
thread of its own, leases renewed (heartbeat) while it runs.

A job's thread is a daemon: on shutdown the runner waits a while for running jobs, then gives
the rest back to the queue (another worker takes them at once) and lets the process exit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from .queue import GiveUp, Job, JobQueue, worker_name
from .tasks import Handler

log = logging.getLogger("moorage.jobs")


class JobRunner:
    """At most `concurrency` jobs at once in this process."""

    def __init__(self, queue: JobQueue, tasks: dict[str, Handler], concurrency: int = 1,
                 poll_interval: float = 1.0, name: str | None = None) -> None:
        self.queue = queue
        self.tasks = tasks
        self.concurrency = max(1, concurrency)
        self.poll_interval = poll_interval
        self.name = name or worker_name()
        self._active: dict[int, tuple[Job, asyncio.Future]] = {}
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start claiming on the running event loop."""
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self, timeout: float) -> None:
        """Stop claiming; wait up to `timeout` for running jobs, release the others."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        running = [f for _, f in self._active.values()]
        if running:
            await asyncio.wait(running, timeout=timeout)
        for job, fut in list(self._active.values()):
            if not fut.done():
                log.warning("job released at shutdown", extra={"job": job.id, "kind": job.kind})
                try:
                    await asyncio.to_thread(self.queue.release, job)
                except Exception:
                    log.exception("could not release job", extra={"job": job.id})
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        assert self._wake is not None
        heartbeat_every = max(self.queue.lease_seconds / 3, 0.05)
        next_beat = time.monotonic() + heartbeat_every
        kinds = set(self.tasks)
        while not self._stopping:
            while len(self._active) < self.concurrency and not self._stopping:
                try:
                    job, given_up = await asyncio.to_thread(self.queue.claim, self.name, kinds)
                except Exception:
                    log.exception("could not claim a job")
                    break
                for gone in given_up:
                    log.error("job failed: its worker died on the last attempt",
                              extra={"job": gone.id, "kind": gone.kind})
                    await self._quietly(self.queue.after_give_up, gone)
                if job is None:
                    break
                if self._stopping:
                    await self._quietly(self.queue.release, job)
                    break
                self._launch(job)
            now = time.monotonic()
            if now >= next_beat:
                await self._heartbeat()
                next_beat = time.monotonic() + heartbeat_every
            wait = min(self.poll_interval, max(next_beat - time.monotonic(), 0.01))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    async def _quietly(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception:
            log.exception("job bookkeeping failed", extra={"call": getattr(fn, "__name__", "")})
            return None

    async def _heartbeat(self) -> None:
        jobs = [job for job, fut in self._active.values() if not fut.done()]
        if not jobs:
            return
        held = await self._quietly(self.queue.renew, jobs)
        if held is None:
            return
        for job in jobs:
            if job.id not in held:
                # Its result will be refused; the job is another worker's now.
                log.warning("job lease lost", extra={"job": job.id, "kind": job.kind})

    def _launch(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        handler = self.tasks[job.kind]

        def target() -> None:
            started = time.monotonic()
            try:
                handler(job)
                outcome: BaseException | None = None
            except BaseException as exc:  # noqa: BLE001 - any failure is the job's last_error
                outcome = exc
            seconds = round(time.monotonic() - started, 3)
            result = "lost"
            try:
                if outcome is None:
                    ok = self.queue.complete(job)
                    result = "done" if ok else "lost"
                    log.info("job done", extra={"job": job.id, "kind": job.kind,
                                                "seconds": seconds, "lease_held": ok})
                else:
                    final = isinstance(outcome, GiveUp)
                    state = self.queue.fail(
                        job, str(outcome) if final else f"{type(outcome).__name__}: {outcome}",
                        final)
                    result = {"failed": "failed", "queued": "retry"}.get(state or "", "lost")
                    log.warning("job failed", extra={"job": job.id, "kind": job.kind,
                                                     "attempt": job.attempts, "now": state,
                                                     "reason": str(outcome)[:500]})
            except Exception:
                log.exception("could not record a job's outcome", extra={"job": job.id})
            _count(job.kind, result, seconds)
            loop.call_soon_threadsafe(self._finished, job.id, done)

        log.info("job started", extra={"job": job.id, "kind": job.kind, "attempt": job.attempts})
        self._active[job.id] = (job, done)
        threading.Thread(target=target, name=f"job-{job.id}", daemon=True).start()

    def _finished(self, job_id: int, done: asyncio.Future) -> None:
        self._active.pop(job_id, None)
        if not done.done():
            done.set_result(None)
        if self._wake is not None:
            self._wake.set()


def _count(kind: str, outcome: str, seconds: float) -> None:
    from ..metrics.instruments import job_instruments

    try:
        m = job_instruments()
        m.runs.labels(kind, outcome).inc()
        m.duration.labels(kind).observe(seconds)
    except Exception:  # a lost sample, never a lost job outcome
        log.exception("could not count a job")
