"""Job queue queries: enqueue with a unique key, claim with a lease, finish, list, retry, cancel.

Claim: SQLite takes the write lock (one writer at a time, so two claimers never pick the same
row); PostgreSQL locks the candidate row with FOR UPDATE SKIP LOCKED, so concurrent claimers
take different rows and never wait on each other. Every change to a running job names the lease
token of its claim: a worker whose lease was taken over cannot finish or renew the job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, exists, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from ..schema import JOB_ACTIVE, jobs

if TYPE_CHECKING:
    from ..uow import UnitOfWork

ACTIVE_WHERE = text("state IN ('queued', 'running')")


class KeyTaken(Exception):
    """Another queued or running job already holds this kind and unique key."""


def _row(r: Any) -> dict[str, Any]:
    d = dict(r._mapping)
    d["payload"] = json.loads(d["payload"] or "{}")
    return d


class JobQueries:
    """The `jobs` table within one unit of work (claims and changes inside a write)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn
        self._insert = uow.store._insert

    def _claimable(self, now: float, kinds: Sequence[str] | None):  # type: ignore[no-untyped-def]
        cond = or_(
            and_(jobs.c.state == "queued", jobs.c.run_at <= now),
            and_(jobs.c.state == "running", jobs.c.lease_until < now),
        )
        return and_(cond, jobs.c.kind.in_(list(kinds))) if kinds is not None else cond

    def enqueue(self, kind: str, payload: dict[str, Any], unique_key: str | None,
                run_at: float, max_attempts: int, now: float) -> tuple[dict[str, Any], bool]:
        """Insert a queued job; with a unique key already queued or running, the existing job
        instead. Returns (job, created)."""
        conn = self.conn
        values = {"kind": kind, "unique_key": unique_key, "payload": json.dumps(payload),
                  "state": "queued", "attempts": 0, "max_attempts": max_attempts,
                  "run_at": run_at, "created_at": now}
        stmt = self._insert(jobs).values(**values)
        if unique_key is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=["kind", "unique_key"],
                                               index_where=ACTIVE_WHERE)
        # PostgreSQL (read committed): the job we conflicted with may finish before we read
        # it; then the insert is tried again.
        for _ in range(5):
            new_id = conn.execute(stmt.returning(jobs.c.id)).scalar_one_or_none()
            if new_id is not None:
                return _row(conn.execute(select(jobs).where(jobs.c.id == new_id)).one()), True
            existing = conn.execute(
                select(jobs).where(jobs.c.kind == kind, jobs.c.unique_key == unique_key,
                                   jobs.c.state.in_(JOB_ACTIVE))
            ).first()
            if existing is not None:
                return _row(existing), False
        raise KeyTaken(unique_key)

    def any_due(self, now: float, kinds: Sequence[str] | None) -> bool:
        """Whether a job could be claimed now (the cheap look before a claim's write)."""
        return bool(self.conn.execute(
            select(exists().where(self._claimable(now, kinds)))).scalar())

    def claim(self, token: str, lease_seconds: float, now: float,
              kinds: Sequence[str] | None) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """Lease the next due job (queued and due, or running with an expired lease) to
        `token`; a taken-over job out of attempts is failed instead. Returns (claimed job or
        None, jobs failed that way)."""
        due = self._claimable(now, kinds)
        given_up: list[dict[str, Any]] = []
        for _ in range(10):
            row = self.conn.execute(
                select(jobs).where(due).order_by(jobs.c.run_at, jobs.c.id).limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None, given_up
            if row.state == "running" and row.attempts >= row.max_attempts:
                error = (f"lease expired (its worker died or stalled) on attempt "
                         f"{row.attempts} of {row.max_attempts}")
                self.conn.execute(update(jobs).where(jobs.c.id == row.id).values(
                    state="failed", lease_until=None, leased_by=None, finished_at=now,
                    last_error=error))
                given_up.append(_row(row) | {"state": "failed", "last_error": error})
                continue
            self.conn.execute(update(jobs).where(jobs.c.id == row.id).values(
                state="running", attempts=row.attempts + 1, leased_by=token,
                lease_until=now + lease_seconds))
            return self.get(row.id), given_up
        return None, given_up

    def renew(self, leases: Iterable[tuple[int, str]], until: float) -> set[int]:
        """Extend the leases still held; returns the ids whose lease was renewed."""
        held: set[int] = set()
        for job_id, token in leases:
            result = self.conn.execute(update(jobs).where(
                jobs.c.id == job_id, jobs.c.leased_by == token, jobs.c.state == "running",
            ).values(lease_until=until))
            if result.rowcount:
                held.add(job_id)
        return held

    def finish(self, job_id: int, token: str, values: dict[str, Any]) -> bool:
        """Apply `values` to a job this lease still holds (False: the lease was lost)."""
        return self.conn.execute(update(jobs).where(
            jobs.c.id == job_id, jobs.c.leased_by == token, jobs.c.state == "running",
        ).values(**values)).rowcount > 0

    def get(self, job_id: int) -> dict[str, Any] | None:
        """The job `job_id`, None when there is none."""
        row = self.conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return _row(row) if row is not None else None

    def list(self, states: Sequence[str] | None, kind: str | None, limit: int
             ) -> list[dict[str, Any]]:
        """Newest first."""
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if states:
            query = query.where(jobs.c.state.in_(list(states)))
        if kind:
            query = query.where(jobs.c.kind == kind)
        return [_row(r) for r in self.conn.execute(query)]

    def active(self, kind: str, unique_key: str) -> dict[str, Any] | None:
        """The queued or running job of (kind, unique_key), if any."""
        row = self.conn.execute(select(jobs).where(
            jobs.c.kind == kind, jobs.c.unique_key == unique_key,
            jobs.c.state.in_(JOB_ACTIVE))).first()
        return _row(row) if row is not None else None

    def latest_with_key(self, kind: str, unique_key: str,
                        states: Sequence[str]) -> dict[str, Any] | None:
        """The newest job of (kind, unique_key) in one of `states`, if any."""
        row = self.conn.execute(_LATEST_WITH_KEY, {"kind": kind, "key": unique_key,
                                                   "states": list(states)}).first()
        return _row(row) if row is not None else None

    def transition(self, job_id: int, from_states: Sequence[str], values: dict[str, Any]
                   ) -> bool:
        """Change a job that is in one of `from_states`; KeyTaken (the write must end) when
        that would make a second active job of its kind and key."""
        try:
            result = self.conn.execute(update(jobs).where(
                jobs.c.id == job_id, jobs.c.state.in_(list(from_states))).values(**values))
        except IntegrityError:
            raise KeyTaken(job_id) from None
        return result.rowcount > 0


# Asked once per post-push processor for every push: built once (statement construction, not
# SQLite, was most of its cost).
_LATEST_WITH_KEY = (
    select(jobs)
    .where(jobs.c.kind == bindparam("kind"), jobs.c.unique_key == bindparam("key"),
           jobs.c.state.in_(bindparam("states", expanding=True)))
    .order_by(jobs.c.id.desc())
    .limit(1)
)
