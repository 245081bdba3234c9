"""The durable job queue: enqueue (unique keys), claim with a lease, complete, fail with
exponential backoff up to max attempts, retry and cancel. A service over the unit of work."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..metadata.queries.jobs import KeyTaken
from ..metadata.uow import Database
from ..oci.errors import RegistryError
from ..times import rfc3339

STATES = ("queued", "running", "done", "failed", "cancelled")


class JobNotFound(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "no such job"


class JobConflict(RegistryError):
    code, status, default_message = "DENIED", 409, "the job cannot change now"


class GiveUp(Exception):
    """A failure no retry can fix (e.g. an image beyond the scan limits): the job is failed
    at once, its message the last error."""


@dataclass(frozen=True)
class Job:
    """One row of the queue; `leased_by` is the lease token of its current claim."""

    id: int
    kind: str
    unique_key: str | None
    payload: dict[str, Any]
    state: str
    attempts: int
    max_attempts: int
    run_at: float
    lease_until: float | None
    leased_by: str | None
    last_error: str | None
    created_at: float
    finished_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; `*_at` stay Unix seconds (rendered as RFC 3339 on output), the lease's
        end is RFC 3339 already."""
        return {**asdict(self), "lease_until": rfc3339(self.lease_until)}


def worker_name() -> str:
    """host:pid, the prefix of this process's lease tokens."""
    return f"{socket.gethostname()}:{os.getpid()}"


def backoff(attempts: int, base: float, cap: float) -> float:
    """Delay before retry number `attempts` (1, 2, …): base, 2·base, 4·base, … at most cap."""
    return min(cap, base * 2 ** max(attempts - 1, 0))


class JobQueue:
    """Enqueue and run bookkeeping; any process or node may claim any job."""

    def __init__(self, database: Database, lease_seconds: float = 60.0, backoff_base: float = 10.0,
                 backoff_max: float = 3600.0, max_attempts: int = 5,
                 kinds: set[str] | None = None) -> None:
        self.database = database
        self.lease_seconds = lease_seconds
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_attempts = max_attempts
        self.kinds = kinds  # known kinds (None: anything goes)

    def _check_kind(self, kind: str) -> None:
        if self.kinds is not None and kind not in self.kinds:
            known = ", ".join(sorted(self.kinds))
            raise RegistryError(f"unknown job kind {kind!r}; known: {known}")

    def enqueue(self, kind: str, payload: dict[str, Any] | None = None,
                unique_key: str | None = None, delay: float = 0.0,
                max_attempts: int | None = None) -> tuple[Job, bool]:
        """Queue a job to run after `delay` seconds; with `unique_key`, a job of the same kind
        and key already queued or running is returned instead. Returns (job, created)."""
        self._check_kind(kind)
        if max_attempts is not None and max_attempts < 1:
            raise RegistryError("max_attempts must be at least 1")
        now = time.time()
        with self.database.write() as uow:
            row, created = uow.jobs.enqueue(kind, payload or {}, unique_key, now + delay,
                                            max_attempts or self.max_attempts, now)
        return Job(**row), created

    def enqueue_once(self, kind: str, payload: dict[str, Any], unique_key: str
                     ) -> tuple[Job, bool]:
        """Queue a job unless one of the same kind and key was ever queued, run, done or failed
        (a cancelled one does not count): repeated requests for one piece of work make one job,
        and a failed one stays failed (the dead letter) until `retry`."""
        with self.database.read() as uow:
            row = uow.jobs.latest_with_key(kind, unique_key,
                                           ["queued", "running", "done", "failed"])
        if row is not None:
            return Job(**row), False
        return self.enqueue(kind, payload, unique_key)

    def claim(self, worker: str, kinds: set[str] | None = None) -> tuple[Job | None, list[Job]]:
        """Lease the next due job to a new token of `worker`; also returns the jobs that were
        failed because their worker died on their last attempt."""
        token = f"{worker}:{uuid.uuid4().hex[:8]}"
        wanted = sorted(kinds) if kinds is not None else None
        now = time.time()
        with self.database.read() as uow:
            # Cheap look first: an idle queue costs a read, not the write lock.
            if not uow.jobs.any_due(now, wanted):
                return None, []
        with self.database.write() as uow:
            row, given_up = uow.jobs.claim(token, self.lease_seconds, now, wanted)
        return (Job(**row) if row else None), [Job(**g) for g in given_up]

    def renew(self, jobs: list[Job]) -> set[int]:
        """Heartbeat: extend the leases of running jobs; returns the ids still held."""
        if not jobs:
            return set()
        with self.database.write() as uow:
            return uow.jobs.renew([(j.id, j.leased_by or "") for j in jobs],
                                  time.time() + self.lease_seconds)

    def complete(self, job: Job) -> bool:
        """Mark done (False: the lease was lost, another worker owns the job now)."""
        now = time.time()
        return self._finish(job, {
            "state": "done", "finished_at": now, "lease_until": None, "last_error": None,
        }, self._next_run(job, now))

    def fail(self, job: Job, error: str, final: bool = False) -> str | None:
        """Record a failed attempt: queued again after a backoff, or `failed` when out of
        attempts (or `final`). Returns the new state (None: the lease was lost)."""
        now = time.time()
        error = error[:2000]
        if final or job.attempts >= job.max_attempts:
            ok = self._finish(job, {
                "state": "failed", "finished_at": now, "lease_until": None, "last_error": error,
            }, self._next_run(job, now))
            return "failed" if ok else None
        ok = self._finish(job, {
            "state": "queued", "lease_until": None, "leased_by": None, "last_error": error,
            "run_at": now + backoff(job.attempts, self.backoff_base, self.backoff_max),
        })
        return "queued" if ok else None

    def release(self, job: Job) -> bool:
        """Give a claimed job back unfinished (shutdown): queued at once, the attempt not
        counted."""
        return self._finish(job, {
            "state": "queued", "lease_until": None, "leased_by": None,
            "attempts": max(job.attempts - 1, 0), "run_at": time.time(),
        })

    def after_give_up(self, job: Job) -> None:
        """A job failed by a takeover (its worker died on the last attempt) keeps its schedule."""
        follow = self._next_run(job, time.time())
        if follow is not None:
            with self.database.write() as uow:
                uow.jobs.enqueue(**follow)

    def _finish(self, job: Job, values: dict[str, Any],
                follow: dict[str, Any] | None = None) -> bool:
        """Apply `values` while this claim's lease holds (False: lost); with `follow`, enqueue
        that job (enqueue's arguments) in the same transaction."""
        with self.database.write() as uow:
            if not uow.jobs.finish(job.id, job.leased_by or "", values):
                return False
            if follow is not None:
                uow.jobs.enqueue(**follow)
            return True

    def _next_run(self, job: Job, now: float) -> dict[str, Any] | None:
        every = job.payload.get("every")
        if not isinstance(every, int | float) or every <= 0:
            return None
        return {"kind": job.kind, "payload": job.payload, "unique_key": job.unique_key,
                "run_at": now + float(every), "max_attempts": job.max_attempts, "now": now}

    # -- schedules ----------------------------------------------------------------------------

    def ensure_schedule(self, kind: str, every: float,
                        payload: dict[str, Any] | None = None) -> Job | None:
        """Make `kind` recur every `every` seconds (0: stop it): one job with unique key
        `schedule` that re-enqueues itself when it finishes."""
        with self.database.read() as uow:
            existing = uow.jobs.active(kind, "schedule")
        if every <= 0:
            if existing is not None and existing["state"] == "queued":
                self._transition(existing["id"], ["queued"],
                                 {"state": "cancelled", "finished_at": time.time()})
            return None
        wanted = {**(payload or {}), "every": every}
        if existing is None:
            return self.enqueue(kind, wanted, "schedule", delay=every)[0]
        job = Job(**existing)
        if job.payload != wanted and job.state == "queued":
            # The settings changed: the next run comes no later than the new interval says.
            self._transition(job.id, ["queued"], {
                "payload": json.dumps(wanted), "run_at": min(job.run_at, time.time() + every),
            })
        return job

    # -- administration -----------------------------------------------------------------------

    def latest(self, kind: str, unique_key: str) -> Job | None:
        """The newest job of `kind` and `unique_key`, whatever its state."""
        with self.database.read() as uow:
            row = uow.jobs.latest_with_key(kind, unique_key, STATES)
        return Job(**row) if row is not None else None

    def get(self, job_id: int) -> Job:
        with self.database.read() as uow:
            row = uow.jobs.get(job_id)
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return Job(**row)

    def list(self, state: str | None = None, kind: str | None = None,
             limit: int = 100) -> list[Job]:
        """Jobs newest first, optionally of one state (comma-separated states) or kind."""
        states = [s.strip() for s in state.split(",") if s.strip()] if state else None
        for s in states or []:
            if s not in STATES:
                raise RegistryError(f"unknown job state {s!r}; use one of {', '.join(STATES)}")
        if not 1 <= limit <= 1000:
            raise RegistryError("limit must be between 1 and 1000")
        with self.database.read() as uow:
            return [Job(**r) for r in uow.jobs.list(states, kind, limit)]

    def retry(self, job_id: int) -> Job:
        """Queue a failed or cancelled job again, now, with fresh attempts."""
        job = self.get(job_id)
        try:
            ok = self._transition(job_id, ["failed", "cancelled"], {
                "state": "queued", "attempts": 0, "run_at": time.time(), "finished_at": None,
                "lease_until": None, "leased_by": None,
            })
        except KeyTaken:
            raise JobConflict(f"job {job_id}: another {job.kind} job with key "
                              f"{job.unique_key!r} is already queued or running") from None
        if not ok:
            raise JobConflict(f"job {job_id} is {job.state}; only failed or cancelled jobs "
                              "can be retried")
        return self.get(job_id)

    def cancel(self, job_id: int) -> Job:
        """Cancel a queued job (a running one cannot be stopped safely mid-way)."""
        job = self.get(job_id)
        if not self._transition(job_id, ["queued"], {"state": "cancelled",
                                                     "finished_at": time.time()}):
            raise JobConflict(f"job {job_id} is {job.state}; only queued jobs can be "
                              "cancelled")
        return self.get(job_id)

    def _transition(self, job_id: int, from_states: Sequence[str], values: dict[str, Any]) -> bool:
        """Change a job in one of `from_states` (KeyTaken: it would be a second active one)."""
        with self.database.write() as uow:
            return uow.jobs.transition(job_id, from_states, values)
