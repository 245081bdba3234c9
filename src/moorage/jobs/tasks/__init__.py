"""The job kinds: one module per kind, each a `make(services)` returning its handler."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..queue import Job

if TYPE_CHECKING:
    from ...chunks.service import ChunkService
    from ...events.outbox import Outbox
    from ...gc.collector import GarbageCollector
    from ...insights.service import InsightsService
    from ...registry.policies import PolicyService
    from ...registry.retention import RetentionService
    from ...registry.webhooks import WebhookService
    from ...replication.service import ReplicationService
    from ...scan.osv_oci import OsvArtifacts
    from ...scan.reports import ScanReports

Handler = Callable[[Job], dict[str, Any] | None]


class TaskServices(Protocol):
    """What the job kinds run on (the composition root's `Registry` is one)."""

    @property
    def policies(self) -> PolicyService: ...

    @property
    def retention(self) -> RetentionService: ...

    @property
    def collector(self) -> GarbageCollector: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def webhooks(self) -> WebhookService: ...

    @property
    def scans(self) -> ScanReports: ...

    @property
    def replication(self) -> ReplicationService: ...

    @property
    def insights(self) -> InsightsService: ...

    @property
    def osv_artifacts(self) -> OsvArtifacts: ...

    @property
    def chunks(self) -> ChunkService: ...

    settings: Any

TEST_JOBS_ENV = "MOORAGE_TEST_JOBS"


class TaskFailed(Exception):
    """A task ran but did not succeed; the message becomes the job's last_error."""


def _modules(env: Mapping[str, str]) -> list[Any]:
    from . import (
        chunks,
        gc,
        insights,
        outbox,
        quota,
        replication,
        replication_schedule,
        retention,
        scans,
        uploads,
        vulndb,
        webhooks,
    )

    mods = [gc, retention, uploads, quota, outbox, webhooks, scans, replication, insights, vulndb,
            replication_schedule, chunks]
    if env.get(TEST_JOBS_ENV) == "1":
        from . import testing

        mods.append(testing)
    return mods


def kinds(env: Mapping[str, str] | None = None) -> set[str]:
    """Every job kind this process can run."""
    return {m.KIND for m in _modules(os.environ if env is None else env)}


def build(services: TaskServices, env: Mapping[str, str] | None = None) -> dict[str, Handler]:
    """{kind: handler} over the registry's services."""
    return {m.KIND: m.make(services) for m in _modules(os.environ if env is None else env)}
