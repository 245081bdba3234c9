"""Replication rules and their runs (counts, failures, the upload sessions a retry resumes)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ...oci.errors import RuleTaken
from ..base import Prebuilt
from ..schema import replication_rules as rr
from ..schema import replication_runs as runs
from ..schema import upstreams as u

if TYPE_CHECKING:
    from ..uow import UnitOfWork

COUNTS = ("manifests", "blobs", "skipped", "mounted", "bytes", "deleted")
# Asked on every push's post-push event: most deployments have no --on-push rule at all.
_ANY_ON_PUSH = Prebuilt(select(rr.c.id).where(rr.c.on_push.is_(True)).limit(1))


def _run(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    d["failures"] = json.loads(d["failures"] or "[]")
    d["uploads"] = json.loads(d["uploads"] or "{}")
    d["notes"] = json.loads(d.get("notes") or "[]")
    return d


class ReplicationQueries:
    """The `replication_rules` and `replication_runs` tables."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.conn = uow.conn

    def _rules(self) -> Any:
        return select(rr, u.c.name.label("upstream"), u.c.url.label("upstream_url")).join(
            u, u.c.id == rr.c.upstream_id)

    def add_rule(self, values: dict[str, Any]) -> int:
        """Insert a rule; RuleTaken when its name is in use."""
        if self.rule(values["name"]) is not None:
            raise RuleTaken(values["name"])
        try:
            with self.conn.begin_nested():
                key = self.conn.execute(rr.insert().values(**values)).inserted_primary_key
        except IntegrityError:
            raise RuleTaken(values["name"]) from None
        assert key is not None
        return int(key[0])

    def rule(self, name: str) -> dict[str, Any] | None:
        row = self.conn.execute(self._rules().where(rr.c.name == name)).first()
        return dict(row._mapping) if row else None

    def rule_by_id(self, rule_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(self._rules().where(rr.c.id == rule_id)).first()
        return dict(row._mapping) if row else None

    def rules(self, on_push: bool | None = None) -> list[dict[str, Any]]:
        query = self._rules().order_by(rr.c.name)
        if on_push is not None:
            query = query.where(rr.c.on_push == on_push)
        return [dict(r._mapping) for r in self.conn.execute(query)]

    def any_on_push(self) -> bool:
        """Whether any rule replicates on push (one indexed probe)."""
        return bool(_ANY_ON_PUSH.rows(self.conn, {}))

    def scheduled_rules(self) -> list[dict[str, Any]]:
        """The rules with a --schedule."""
        return [dict(r._mapping) for r in self.conn.execute(
            self._rules().where(rr.c.schedule.is_not(None)).order_by(rr.c.id))]

    def set_scheduled(self, rule_id: int, when: float) -> None:
        """Record the cron tick a run was queued for."""
        self.conn.execute(update(rr).where(rr.c.id == rule_id).values(scheduled_at=when))

    def stats(self) -> list[dict[str, Any]]:
        """Per rule: its name, runs by state, bytes moved, and when its latest successful run
        finished (None: never)."""
        found: dict[int, dict[str, Any]] = {
            r.id: {"rule": r.name, "runs": {}, "bytes": 0, "last_done": None}
            for r in self.conn.execute(select(rr.c.id, rr.c.name))}
        query = select(runs.c.rule_id, runs.c.state, func.count(), func.sum(runs.c.bytes),
                       func.max(runs.c.finished_at)).group_by(runs.c.rule_id, runs.c.state)
        for rule_id, state, n, moved, finished in self.conn.execute(query):
            if (entry := found.get(rule_id)) is None:
                continue
            entry["runs"][state] = int(n)
            entry["bytes"] += int(moved or 0)
            if state == "done" and finished is not None:
                entry["last_done"] = float(finished)
        return [found[k] for k in sorted(found)]

    def rules_of_upstream(self, upstream_id: int) -> list[str]:
        return list(self.conn.execute(
            select(rr.c.name).where(rr.c.upstream_id == upstream_id)).scalars())

    def remove_rule(self, rule_id: int) -> None:
        self.conn.execute(delete(runs).where(runs.c.rule_id == rule_id))
        self.conn.execute(delete(rr).where(rr.c.id == rule_id))

    # -- runs ---------------------------------------------------------------------------------

    def run_of_job(self, job_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(select(runs).where(runs.c.job_id == job_id)).first()
        return _run(row) if row else None

    def start_run(self, rule_id: int, job_id: int | None, trigger: str, now: float
                  ) -> dict[str, Any]:
        """The run of `job_id` (a retry continues it, state running again), else a new one."""
        if job_id is not None and (found := self.run_of_job(job_id)) is not None:
            self.conn.execute(update(runs).where(runs.c.id == found["id"]).values(
                state="running", finished_at=None))
            return {**found, "state": "running", "finished_at": None}
        key = self.conn.execute(runs.insert().values(
            rule_id=rule_id, job_id=job_id, state="running", trigger=trigger, manifests=0,
            blobs=0, skipped=0, mounted=0, bytes=0, deleted=0, failures="[]", uploads="{}",
            started_at=now)).inserted_primary_key
        assert key is not None
        row = self.conn.execute(select(runs).where(runs.c.id == int(key[0]))).one()
        return _run(row)

    def add_counts(self, run_id: int, counts: dict[str, int]) -> None:
        """Add to a run's counters."""
        values = {k: getattr(runs.c, k) + v for k, v in counts.items() if k in COUNTS and v}
        if values:
            self.conn.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def set_upload(self, run_id: int, key: str, location: str | None) -> None:
        """Remember (or forget, with None) the upload session a blob is being pushed through."""
        row = self.conn.execute(select(runs.c.uploads).where(runs.c.id == run_id)).first()
        uploads = json.loads(row.uploads if row else "{}")
        if location is None:
            uploads.pop(key, None)
        else:
            uploads[key] = location
        self.conn.execute(update(runs).where(runs.c.id == run_id).values(
            uploads=json.dumps(uploads)))

    def add_note(self, run_id: int, text: str) -> None:
        """Append to a run's notes (the latest 50 are kept; a retry does not repeat one)."""
        row = self.conn.execute(select(runs.c.notes).where(runs.c.id == run_id)).one()
        notes = json.loads(row.notes or "[]")
        if text not in notes:
            notes.append(text)
            self.conn.execute(update(runs).where(runs.c.id == run_id).values(
                notes=json.dumps(notes[-50:])))

    def finish_run(self, run_id: int, state: str, error: str | None, now: float) -> None:
        """End an attempt: done, or failed with its cause added to the run's failures."""
        values: dict[str, Any] = {"state": state, "error": error, "finished_at": now}
        if error is not None:
            row = self.conn.execute(select(runs.c.failures).where(runs.c.id == run_id)).one()
            failures = json.loads(row.failures or "[]")
            failures.append({"at": now, "error": error})
            values["failures"] = json.dumps(failures[-50:])
        self.conn.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def runs(self, rule_id: int, limit: int) -> list[dict[str, Any]]:
        """A rule's runs, newest first."""
        return [_run(r) for r in self.conn.execute(
            select(runs).where(runs.c.rule_id == rule_id).order_by(runs.c.id.desc())
            .limit(limit))]

    def active_runs(self, rule_id: int) -> int:
        return int(self.conn.execute(select(func.count()).select_from(runs).where(
            runs.c.rule_id == rule_id, runs.c.state == "running")).scalar_one())
