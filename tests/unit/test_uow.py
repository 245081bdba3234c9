"""The unit of work: a write commits its rows and its events together, or neither."""

from __future__ import annotations

import pytest

from moorage.bootstrap import Registry
from moorage.events.types import SYSTEM, ManifestDeleted, records


def _event(repository: str) -> list:
    digest = "sha256:" + "0" * 64
    return records(ManifestDeleted(actor=SYSTEM, repository=repository, digest=digest))


def test_a_write_commits_its_rows_and_events_together(registry: Registry) -> None:
    before = registry.outbox.last_id()
    with registry.database.write() as uow:
        repo_id = uow.repositories.ensure("team/app")
        uow.emit(_event("team/app"))
    with registry.database.read() as uow:
        assert uow.repositories.id_of("team/app") == repo_id
    latest = registry.outbox.latest(1)
    assert latest and latest[0]["repository"] == "team/app"
    assert latest[0]["id"] > before


def test_a_failed_write_leaves_neither_rows_nor_events(registry: Registry) -> None:
    last = registry.outbox.last_id()
    with pytest.raises(RuntimeError, match="refused"), registry.database.write() as uow:
        uow.repositories.ensure("team/gone")
        uow.emit(_event("team/gone"))
        raise RuntimeError("refused")
    with registry.database.read() as uow:
        assert uow.repositories.id_of("team/gone") is None
    assert registry.outbox.last_id() == last


def test_a_read_cannot_emit_events(registry: Registry) -> None:
    with registry.database.read() as uow, pytest.raises(RuntimeError):
        uow.emit(_event("team/app"))
