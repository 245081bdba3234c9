"""Crash safety of chunk packs: a pack is announced (its intent committed) before its bytes are
written and settled in the transaction that records its chunks, so one a crash left between
the two is found and freed (GC after the upload TTL, `moorage check --repair`), while a young
intent (a job still writing) is left alone. The crash itself over HTTP (SIGKILL of the server
at that point) is in tests/integration/test_pack_crash.py."""

from __future__ import annotations

import hashlib
import os

import pytest

from moorage.auth.identity import CLI
from moorage.bootstrap import Registry
from moorage.chunks.chunker import chunk_id

from .test_chunks import read, two_versions
from .test_chunks_stress import any_registry  # noqa: F401 - the fixture: both engines


@pytest.fixture
def registry(any_registry: Registry) -> Registry:  # noqa: F811
    """Every test here on SQLite and on PostgreSQL (the intent's locks differ)."""
    return any_registry


def pack_objects(registry: Registry) -> set[str]:
    """Keys of the stored pack objects (whole blobs are named by their digest)."""
    return {o.key for o in registry.blob_store.list_blobs() if "/pack/" in o.key}


def intents(registry: Registry) -> list[str]:
    with registry.database.read() as uow:
        return [k for k, _, _ in uow.chunks.abandoned_packs(float("inf"), 1000)]


def abandoned_pack(registry: Registry) -> str:
    """The state a crash leaves: the pack's bytes committed to storage, its chunks never
    recorded (the job stopped between `_write_pack` and its recording transaction)."""
    data = os.urandom(100_000)
    key, _, _ = registry.chunks._write_pack(iter([(chunk_id(data), data)]))
    assert registry.blob_store.blob_size(key) == len(data)
    return key


def test_chunking_settles_its_pack_intent(registry: Registry) -> None:
    _, tuned, d1, d2 = two_versions(registry)
    registry.chunks.chunk_blob(d1)
    out = registry.chunks.chunk_blob(d2)
    assert out["layout"] == "chunked"
    assert intents(registry) == []
    assert out["pack"] in pack_objects(registry)
    assert hashlib.sha256(read(registry, d2)).digest() == hashlib.sha256(tuned).digest()


def test_gc_frees_an_abandoned_pack_only_after_the_upload_ttl(registry: Registry) -> None:
    base, tuned, d1, d2 = two_versions(registry)
    registry.chunks.chunk_blob(d1)
    registry.chunks.chunk_blob(d2)
    key = abandoned_pack(registry)
    young = registry.collector.run(grace_period=3600, upload_ttl=3600)
    assert young.packs_abandoned == 0 and not young.errors
    assert key in pack_objects(registry) and intents(registry) == [key]
    old = registry.collector.run(grace_period=3600, upload_ttl=0)
    assert old.packs_abandoned == 1 and not old.errors
    assert key not in pack_objects(registry)
    assert intents(registry) == []
    assert read(registry, d1) == base and read(registry, d2) == tuned


def test_a_commit_after_the_gc_gave_its_pack_up_is_refused(registry: Registry) -> None:
    key = abandoned_pack(registry)
    registry.collector.run(grace_period=3600, upload_ttl=0)
    with registry.database.write() as uow:
        assert uow.chunks.settle_pack(key) is False


def test_a_pack_of_chunks_stored_already_is_not_kept(registry: Registry) -> None:
    data = os.urandom(200_000)
    registry.chunks.store_chunks([data])
    first = pack_objects(registry)
    registry.chunks.store_chunks([data])  # every chunk known: this second pack holds nothing
    assert intents(registry) == []
    registry.collector.run(grace_period=3600, upload_ttl=3600)  # drains the queued pack
    assert pack_objects(registry) == first


def test_check_reports_an_abandoned_pack_and_repair_removes_it(registry: Registry) -> None:
    _, tuned, d1, d2 = two_versions(registry)
    registry.chunks.chunk_blob(d1)
    registry.chunks.chunk_blob(d2)
    key = abandoned_pack(registry)
    assert registry.integrity.run(CLI, grace=3600).findings == []  # young: a job may be writing
    found = registry.integrity.run(CLI, grace=0).findings
    assert [(f.kind, f.key) for f in found] == [("pack", key)]
    repaired = registry.integrity.run(CLI, grace=0, repair=True)
    assert [f.repaired for f in repaired.findings] == ["pack deleted"]
    assert key not in pack_objects(registry) and intents(registry) == []
    assert registry.integrity.run(CLI, grace=0).findings == []
    assert read(registry, d2) == tuned
