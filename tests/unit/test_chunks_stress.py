"""Chunking vs garbage collection vs re-push, on both engines: a chunking job that reuses the
chunks GC is deleting must never break a blob (the reuse and the delete conflict in the
database; the loser retries or keeps the rows)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.weights import safetensors

from moorage.bootstrap import Registry
from moorage.oci.digest import parse_digest

from .conftest import make_registry
from .content import digest_of, push_blob, push_layer_image

SIZE, TENSOR, ROUNDS = 4 << 20, 128 << 10, 4


@pytest.fixture(params=["sqlite", "postgresql"])
def any_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """A registry on each engine (PostgreSQL from the shared test services)."""
    extra: dict[str, object] = {}
    if request.param == "postgresql":
        from support.backends import services_or_skip

        from moorage.metadata.engine import make_engine
        from moorage.metadata.migrate import upgrade

        url = services_or_skip().pg.create_database()
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        extra["database_url"] = url
    built = make_registry(tmp_path / "registry", **extra)
    try:
        yield built
    finally:
        built.close()


def _read(registry: Registry, digest: str) -> bytes | None:
    with registry.database.read() as uow:
        row = uow.blobs.find(digest)
    if row is None:
        return None
    return b"".join(registry.blob_store.open_blob(row.storage_key, 0, row.size))


def _race(reg: Registry, r: int, base: bytes, tuned: bytes) -> None:
    """Chunk the fine-tune while GC deletes the base's chunks and the base is pushed again."""
    errors: list[BaseException] = []

    def guarded(fn: Callable[[], object]) -> threading.Thread:
        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the assert below
                errors.append(exc)
        return threading.Thread(target=body)

    threads = [
        guarded(lambda: reg.chunks.chunk_blob(digest_of(tuned))),
        guarded(lambda: reg.collector.run(grace_period=0)),
        guarded(lambda: push_blob(reg, f"s/again{r}", base)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


def test_chunking_gc_and_repush_race_never_break_a_blob(any_registry: Registry) -> None:
    reg = any_registry
    for r in range(ROUNDS):
        base = safetensors(SIZE, seed=r, tensor_bytes=TENSOR)
        tuned = safetensors(SIZE, seed=r, version=1, tensor_bytes=TENSOR)
        m1 = push_layer_image(reg, f"s/base{r}", base)
        reg.chunks.chunk_blob(digest_of(base))
        m2 = push_layer_image(reg, f"s/tuned{r}", tuned)
        asyncio.run(reg.manifests.delete(f"s/base{r}", parse_digest(m1)))
        _race(reg, r, base, tuned)
        reg.collector.run(grace_period=3600)
        assert hashlib.sha256(_read(reg, digest_of(tuned)) or b"").hexdigest() == \
            digest_of(tuned).split(":")[1]
        again = _read(reg, digest_of(base))
        assert again is None or again == base
        # The tuned version alone now: GC frees its chunks and packs without touching others.
        asyncio.run(reg.manifests.delete(f"s/tuned{r}", parse_digest(m2)))
        report = reg.collector.run(grace_period=0)
        assert not report.errors
        assert _read(reg, digest_of(tuned)) is None
    root = Path(reg.settings.data_dir) / "blobs"
    left = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert left < 64 << 10  # configs at most: every chunk pack went with its last chunk
