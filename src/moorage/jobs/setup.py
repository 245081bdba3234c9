"""Wiring the queue, the runner and the schedules from Settings (server, worker, CLI, tests)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from . import tasks
from .queue import JobQueue
from .runner import JobRunner

log = logging.getLogger("moorage.jobs")


def make_queue(settings: Any, database: Any, extra_kinds: Iterable[str] = ()) -> JobQueue:
    """The queue on the registry's database, knowing the kinds this process can run (the
    built-in ones and `extra_kinds`, e.g. the post-push processors')."""
    return JobQueue(
        database,
        lease_seconds=settings.job_lease_seconds,
        backoff_base=settings.job_backoff_base,
        backoff_max=settings.job_backoff_max,
        max_attempts=settings.job_max_attempts,
        kinds=tasks.kinds() | set(extra_kinds),
    )


def make_runner(settings: Any, queue: JobQueue, services: tasks.TaskServices,
                concurrency: int | None = None,
                extra: Mapping[str, tasks.Handler] | None = None) -> JobRunner:
    """A runner of every known kind over the registry's services, plus the `extra` handlers."""
    return JobRunner(queue, {**tasks.build(services), **(extra or {})},
                     concurrency or settings.job_concurrency, settings.job_poll_interval)


def ensure_schedules(queue: JobQueue, settings: Any) -> None:
    """The recurring jobs the settings ask for: retention + GC every `gc_interval`, upload
    expiry every `upload_expiry_interval`, outbox pruning every `events_prune_interval`, the
    import of the OSV artifact `vulndb_oci_ref` every `vulndb_oci_interval`, and the check of
    replication `--schedule`s every `replication_schedule_interval` (0 stops any)."""
    for kind, every, payload in (
        ("gc", settings.gc_interval, {"retention": True}),
        ("uploads.expire", settings.upload_expiry_interval, {}),
        ("outbox.prune", settings.events_prune_interval, {"retention": settings.events_retention}),
        ("vulndb.import-oci", settings.vulndb_oci_interval if settings.vulndb_oci_ref else 0,
         {"ref": settings.vulndb_oci_ref}),
        ("replication.schedule", settings.replication_schedule_interval, {}),
    ):
        try:
            queue.ensure_schedule(kind, every, payload)
        except Exception:
            log.exception("could not schedule a recurring job", extra={"kind": kind})
