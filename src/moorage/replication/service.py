"""Replication rules for server admins (add, list, remove, run, status, history) and the
`replication.run` job that carries one run out (copier.py does the copying)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ..auth.authorizer import SERVER, Action
from ..events.types import ReplicationCompleted, ReplicationFailed, records
from ..jobs.queue import GiveUp
from ..oci.errors import RegistryError, RuleTaken
from ..registry.upstreams import UpstreamNotFound, check_name
from . import cron, rules
from .bandwidth import parse_rate

if TYPE_CHECKING:
    from ..auth.identity import Principal
    from ..bootstrap import Registry
    from ..jobs.queue import Job

log = logging.getLogger(__name__)
KIND = "replication.run"
DIRECTIONS = ("push", "pull")


class RuleNotFound(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "no such replication rule"


class RuleConflict(RegistryError):
    code, status, default_message = "DENIED", 409, "a replication rule of that name exists"


def unique_key(rule_id: int) -> str:
    """At most one queued or running `replication.run` per rule."""
    return f"rule:{rule_id}"


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A rule as admins see it."""
    return {"name": row["name"], "direction": row["direction"], "upstream": row["upstream"],
            "upstream_url": row["upstream_url"], "repos": row["repos"], "tags": row["tags"],
            "on_push": bool(row["on_push"]), "delete_mirrors": bool(row["delete_mirrors"]),
            "platforms": row.get("platforms"), "artifact_types": row.get("artifact_types"),
            "schedule": row.get("schedule"), "bandwidth": row.get("bandwidth"),
            "created_at": row["created_at"], "created_by": row["created_by"]}


def _platforms(text: str | None) -> str | None:
    """The rule's `--platform os/arch[/variant],…` (None: every platform)."""
    found = rules.patterns(text)
    for p in found:
        parts = p.split("/")
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise RegistryError(f"--platform takes os/architecture[/variant], not {p!r}")
    return ",".join(found) or None


class ReplicationService:
    """Rules, runs and the job handler over the registry's services."""

    def __init__(self, registry: Registry) -> None:
        self.reg = registry
        self.database = registry.database

    def _require(self, actor: Principal, doing: str) -> None:
        self.reg.authorizer.require(actor, Action.ADMIN_SERVER, SERVER, doing=doing)

    def _rule(self, name: str) -> dict[str, Any]:
        with self.database.read() as uow:
            row = uow.replication.rule(name)
        if row is None:
            raise RuleNotFound(f"no replication rule named {name!r}")
        return row

    # -- rules --------------------------------------------------------------------------------

    def add(self, actor: Principal, name: str, direction: str, upstream: str, repos: str,
            tags: str | None = None, on_push: bool = False, delete_mirrors: bool = False,
            platforms: str | None = None, artifact_types: str | None = None,
            schedule: str | None = None, bandwidth: str | None = None) -> dict[str, Any]:
        """Add a rule pushing our matching repositories to `upstream` or pulling its own
        (filtered by platform and artifact type, on a cron schedule, under a bandwidth)."""
        self._require(actor, "add a replication rule")
        check_name(name, "replication rule")
        if direction not in DIRECTIONS:
            raise RegistryError(f"direction must be push or pull, not {direction!r}")
        if not rules.patterns(repos):
            raise RegistryError("--repos needs at least one repository glob")
        if direction == "pull" and not all(rules.is_literal(p) for p in rules.patterns(repos)):
            raise RegistryError("--pull-from needs repository names, not globs: an upstream's "
                                "repositories cannot be listed")
        if on_push and direction == "pull":
            raise RegistryError("--on-push replicates our pushes: it needs --push-to")
        if tags is not None and not rules.patterns(tags):
            tags = None
        try:
            if schedule is not None and schedule.strip():
                cron.parse(schedule)
            else:
                schedule = None
            rate = parse_rate(bandwidth) if bandwidth else None
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
        extra = {"platforms": _platforms(platforms),
                 "artifact_types": ",".join(rules.patterns(artifact_types)) or None,
                 "schedule": schedule.strip() if schedule else None, "bandwidth": rate}
        with self.database.write() as uow:
            up = uow.cache.upstream(upstream)
            if up is None:
                raise UpstreamNotFound(f"no upstream named {upstream!r}")
            try:
                uow.replication.add_rule({
                    "name": name, "direction": direction, "upstream_id": up["id"],
                    "repos": ",".join(rules.patterns(repos)),
                    "tags": ",".join(rules.patterns(tags)) if tags else None,
                    "on_push": on_push, "delete_mirrors": delete_mirrors, **extra,
                    "created_at": time.time(), "created_by": actor.name})
            except RuleTaken:
                raise RuleConflict(f"a replication rule named {name!r} exists already") from None
            row = uow.replication.rule(name)
        assert row is not None
        return public(row)

    def list_rules(self, actor: Principal) -> list[dict[str, Any]]:
        """Every rule."""
        self._require(actor, "list replication rules")
        with self.database.read() as uow:
            return [public(r) for r in uow.replication.rules()]

    def remove(self, actor: Principal, name: str) -> None:
        """Forget a rule and its runs (a queued run of it then does nothing)."""
        self._require(actor, "remove a replication rule")
        row = self._rule(name)
        with self.database.write() as uow:
            uow.replication.remove_rule(row["id"])

    # -- runs ---------------------------------------------------------------------------------

    def run(self, actor: Principal, name: str, repository: str | None = None,
            reference: str | None = None) -> tuple[Job, bool]:
        """Queue a run of the rule (all it matches, or one repository's reference); a run of the
        rule queued or running already is returned instead (created False)."""
        self._require(actor, "run a replication rule")
        row = self._rule(name)
        payload: dict[str, Any] = {"rule_id": row["id"], "rule": row["name"]}
        if repository is not None:
            payload |= {"repository": repository, "reference": reference}
        return self.reg.jobs.enqueue(KIND, payload, unique_key(row["id"]))

    def status(self, actor: Principal, name: str) -> dict[str, Any]:
        """The rule, its active job (if any) and its latest run."""
        self._require(actor, "read a replication rule")
        row = self._rule(name)
        with self.database.read() as uow:
            job = uow.jobs.latest_with_key(KIND, unique_key(row["id"]), ["queued", "running"])
            latest = uow.replication.runs(row["id"], 1)
        return {"rule": public(row), "active_job": job["id"] if job else None,
                "active_state": job["state"] if job else None,
                "last_run": latest[0] if latest else None}

    def history(self, actor: Principal, name: str, limit: int = 20) -> list[dict[str, Any]]:
        """The rule's runs, newest first, each with its failures and their causes."""
        self._require(actor, "read a replication rule")
        row = self._rule(name)
        with self.database.read() as uow:
            return uow.replication.runs(row["id"], limit)

    def tick(self, now: float | None = None) -> list[str]:
        """Queue a run of each --schedule rule whose next cron time (after the last one a run
        was queued for, or its creation) has come; missed times make one run, and a rule with
        a run queued or running gets no second one."""
        now = time.time() if now is None else now
        with self.database.read() as uow:
            found = uow.replication.scheduled_rules()
        queued = []
        for rule in found:
            try:
                due = cron.parse(rule["schedule"]).next_after(
                    rule["scheduled_at"] or rule["created_at"])
            except ValueError:
                log.warning("replication rule has a bad schedule", extra={"rule": rule["name"]})
                continue
            if due > now:
                continue
            self.reg.jobs.enqueue(KIND, {"rule_id": rule["id"], "rule": rule["name"],
                                         "trigger": f"schedule {rule['schedule']}"},
                                  unique_key(rule["id"]))
            with self.database.write() as uow:
                uow.replication.set_scheduled(rule["id"], now)
            queued.append(rule["name"])
        return queued

    # -- the job ------------------------------------------------------------------------------

    def execute(self, job: Job) -> dict[str, Any]:
        """Carry out one attempt of a `replication.run` job; a failure is recorded in the run
        (with its cause) and raised, for the queue's retry with backoff."""
        from .copier import Copier

        payload = job.payload
        with self.database.read() as uow:
            rule = uow.replication.rule_by_id(int(payload["rule_id"]))
        if rule is None:
            raise GiveUp(f"replication rule {payload.get('rule')!r} was removed")
        trigger = payload.get("trigger") or ("manual" if not payload.get("repository") else
                                             f"push {payload['repository']}:"
                                             f"{payload.get('reference')}")
        with self.database.write() as uow:
            run = uow.replication.start_run(rule["id"], job.id, trigger, time.time())
            upstream = uow.cache.upstream_by_id(rule["upstream_id"])
        assert upstream is not None
        s = self.reg.settings
        client = self.reg.upstreams.client(upstream, chunk_size=s.replication_chunk_size,
                                           retries=s.replication_retries)

        def save(what: str, value: Any) -> None:
            with self.database.write() as uow:
                if what == "counts":
                    uow.replication.add_counts(run["id"], value)
                elif what == "note":
                    uow.replication.add_note(run["id"], value)
                else:
                    uow.replication.set_upload(run["id"], *value)

        copier = Copier(self.reg, client, rule, run, save, s.replication_parallel_blobs)
        event = {"rule": rule["name"], "run": run["id"], "direction": rule["direction"],
                 "upstream": upstream["name"], "repository": payload.get("repository"),
                 "tag": payload.get("reference") if ":" not in str(payload.get("reference"))
                 else None}

        async def main() -> None:
            try:
                repository = payload.get("repository")
                if rule["direction"] == "push":
                    if repository:
                        await copier.push_reference(repository, payload["reference"])
                    else:
                        await copier.push_all()
                elif repository:
                    await copier.pull_reference(repository, payload["reference"])
                else:
                    await copier.pull_all()
            finally:
                copier._flush()
                await client.close()

        try:
            asyncio.run(main())
        except Exception as exc:
            cause = f"{type(exc).__name__}: {exc}"
            final = isinstance(exc, GiveUp) or job.attempts >= job.max_attempts
            with self.database.write() as uow:
                uow.replication.finish_run(run["id"], "failed", cause[:2000], time.time())
                uow.emit(records(ReplicationFailed(actor=copier.actor, **event,
                                                   error=cause[:2000], attempt=job.attempts,
                                                   final=final)))
            log.warning("replication run failed", extra={"rule": rule["name"], "job": job.id,
                                                         "attempt": job.attempts,
                                                         "reason": cause[:300]})
            raise
        with self.database.write() as uow:
            uow.replication.finish_run(run["id"], "done", None, time.time())
            done = uow.replication.run_of_job(job.id)
            assert done is not None
            counts = {k: done[k] for k in ("manifests", "blobs", "skipped", "mounted", "bytes",
                                           "deleted")}
            uow.emit(records(ReplicationCompleted(actor=copier.actor, **event,
                                                  trigger=trigger, counts=counts)))
        return counts

    # -- on push ------------------------------------------------------------------------------

    def on_push_rules(self, repository: str) -> list[dict[str, Any]]:
        """The --on-push rules whose repository globs match `repository`."""
        with self.database.read() as uow:
            found = uow.replication.rules(on_push=True) if uow.replication.any_on_push() else []
        return [r for r in found if rules.matches(r["repos"], repository)]
