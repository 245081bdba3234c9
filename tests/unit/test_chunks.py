"""Chunk-level dedup at the service level: the chunking job, reads of chunked blobs, GC of
chunks and packs, the delta-push internals, the stats."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from support.weights import safetensors

from moorage.bootstrap import Registry
from moorage.chunks.service import RecipeEntry
from moorage.metadata.queries.chunks import CHUNKED_PREFIX
from moorage.oci.digest import parse_digest

from .content import digest_of, push_blob, push_layer_image

SIZE = 8 << 20
TENSOR = 256 << 10  # 32 tensors: a fine-tune changes 2 of them


def stored_bytes(registry: Registry) -> int:
    """Bytes of every blob and pack object on disk."""
    root = Path(registry.settings.data_dir) / "blobs"
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def read(registry: Registry, digest: str, offset: int = 0, length: int | None = None) -> bytes:
    """A blob's bytes as every reader gets them (through the chunk-aware store)."""
    with registry.database.read() as uow:
        row = uow.blobs.find(digest)
    assert row is not None
    n = row.size - offset if length is None else length
    return b"".join(registry.blob_store.open_blob(row.storage_key, offset, n))


def key_of(registry: Registry, digest: str) -> str:
    with registry.database.read() as uow:
        row = uow.blobs.find(digest)
    assert row is not None
    return row.storage_key


def two_versions(registry: Registry) -> tuple[bytes, bytes, str, str]:
    base = safetensors(SIZE, tensor_bytes=TENSOR)
    tuned = safetensors(SIZE, version=1, tensor_bytes=TENSOR)
    return base, tuned, push_blob(registry, "ml/base", base), push_blob(registry, "ml/tuned",
                                                                         tuned)


def test_a_fine_tune_is_stored_as_its_changed_chunks(registry: Registry) -> None:
    base, _tuned, d1, d2 = two_versions(registry)
    one = stored_bytes(registry) // 2
    first = registry.chunks.chunk_blob(d1)
    assert first["layout"] == "whole"
    assert not key_of(registry, d1).startswith(CHUNKED_PREFIX)
    second = registry.chunks.chunk_blob(d2)
    assert second["layout"] == "chunked"
    assert key_of(registry, d2).startswith(CHUNKED_PREFIX)
    registry.collector.run(grace_period=3600)  # drains the queued old object of d2
    assert stored_bytes(registry) <= 1.15 * one
    assert read(registry, d1) == base
    assert hashlib.sha256(read(registry, d2)).hexdigest() == d2.split(":")[1]


def test_range_reads_of_a_chunked_blob_cross_chunk_boundaries(registry: Registry) -> None:
    _, tuned, d1, d2 = two_versions(registry)
    registry.chunks.chunk_blob(d1)
    registry.chunks.chunk_blob(d2)
    with registry.database.read() as uow:
        pieces = uow.chunks.pieces(d2, 0, 10_000)
    assert len(pieces) > 20
    for p in pieces[1:6] + pieces[-3:-1]:
        start = p.offset - 100
        assert read(registry, d2, start, 200 + p.length) == tuned[start:start + 200 + p.length]
    assert read(registry, d2, len(tuned) - 1, 1) == tuned[-1:]
    assert read(registry, d2, 12345, 3 << 20) == tuned[12345:12345 + (3 << 20)]


def test_chunking_is_idempotent(registry: Registry) -> None:
    _, _, d1, d2 = two_versions(registry)
    registry.chunks.chunk_blob(d1)
    registry.chunks.chunk_blob(d2)
    again = registry.chunks.chunk_blob(d2)
    assert again == {"skipped": "chunked already"}
    assert registry.chunks.chunk_blob(d1) == {"skipped": "chunked already"}


def test_small_or_unshared_blobs_stay_whole(registry: Registry) -> None:
    d = push_blob(registry, "ml/rand", os.urandom(2 << 20))
    out = registry.chunks.chunk_blob(d)
    assert out["layout"] == "whole" and out["shared_bytes"] == 0
    assert registry.blob_store.blob_path(key_of(registry, d)) is not None


def test_gc_keeps_the_chunks_a_version_needs_and_frees_the_rest(registry: Registry) -> None:
    base = safetensors(SIZE, tensor_bytes=TENSOR)
    tuned = safetensors(SIZE, version=1, tensor_bytes=TENSOR)
    m1 = push_layer_image(registry, "gc/base", base)
    m2 = push_layer_image(registry, "gc/tuned", tuned)
    d1, d2 = digest_of(base), digest_of(tuned)
    registry.chunks.chunk_blob(d1)
    registry.chunks.chunk_blob(d2)
    asyncio.run(registry.manifests.delete("gc/base", parse_digest(m1)))
    report = registry.collector.run(grace_period=0)
    assert report.blobs >= 1 and not report.errors
    with registry.database.read() as uow:
        assert uow.blobs.find(d1) is None
    # The base's object is the tuned version's pack now: kept, and the tuned one reads whole.
    assert hashlib.sha256(read(registry, d2)).hexdigest() == d2.split(":")[1]
    kept = stored_bytes(registry)
    assert kept <= 1.15 * len(tuned)
    asyncio.run(registry.manifests.delete("gc/tuned", parse_digest(m2)))
    report = registry.collector.run(grace_period=0)
    assert report.chunks > 0 and not report.errors
    assert stored_bytes(registry) < 64 << 10
    with registry.database.read() as uow:
        assert uow.chunks.existing(uow.chunks.locations([]).keys()) == set()


def test_delta_api_commits_a_blob_from_held_and_new_chunks(registry: Registry) -> None:
    _base, tuned, d1, _ = two_versions(registry)
    registry.chunks.chunk_blob(d1)
    from moorage.chunks.chunker import cut

    cuts = list(cut([tuned], registry.settings.chunk_avg_size))
    missing = set(registry.chunks.missing(c.chunk_id for c in cuts))
    assert 0 < len(missing) < len(cuts) // 4
    datas = [tuned[c.offset:c.offset + c.length] for c in cuts if c.chunk_id in missing]
    assert set(registry.chunks.store_chunks(datas)) == missing
    assert registry.chunks.missing(c.chunk_id for c in cuts) == []
    new = digest_of(tuned + b"x")
    recipe = [RecipeEntry(c.chunk_id, c.length) for c in cuts]
    try:
        registry.chunks.commit_recipe("ml/delta", new, recipe)
        raise AssertionError("a recipe that hashes otherwise was committed")
    except Exception as exc:  # noqa: BLE001 - the spec's error is what is asserted
        assert getattr(exc, "code", None) == "DIGEST_INVALID"
    assert registry.chunks.commit_recipe("ml/delta", digest_of(tuned), recipe) is False
    assert registry.chunks.commit_recipe("ml/delta2", digest_of(tuned + tuned), recipe + recipe)
    assert read(registry, digest_of(tuned + tuned)) == tuned + tuned


def test_dedup_stats_per_namespace(registry: Registry) -> None:
    _, _, d1, d2 = two_versions(registry)
    registry.chunks.chunk_blob(d1)
    registry.chunks.chunk_blob(d2)
    stats = registry.chunks.stats("ml")["ml"]
    assert stats["logical"] == 2 * len(safetensors(SIZE, tensor_bytes=TENSOR))
    assert stats["saved"] > 0.8 * len(safetensors(SIZE, tensor_bytes=TENSOR))
    assert stats["ratio"] > 1.7


def test_a_chunked_blob_is_read_from_its_merged_extents(registry: Registry) -> None:
    """A GET reads a few dozen runs of packs, not thousands of recipe rows; a recipe recorded
    before extents existed (none stored) still reads through the recipe itself."""
    from sqlalchemy import delete

    from moorage.metadata.schema import blob_extents

    _, tuned, d1, d2 = two_versions(registry)
    registry.chunks.chunk_blob(d1)
    registry.chunks.chunk_blob(d2)
    with registry.database.read() as uow:
        pieces = uow.chunks.pieces(d2, 0, 10_000)
        extents = uow.chunks.extents(d2, 0, 10_000)
    assert sum(e.length for e in extents) == len(tuned) == sum(p.length for p in pieces)
    assert len(extents) <= 2 * 2 + 1 < len(pieces) // 10  # 2 changed tensors: 5 runs at most
    assert read(registry, d2) == tuned
    assert read(registry, d2, 300_000, 1_000_000) == tuned[300_000:1_300_000]
    with registry.database.write() as uow:
        uow.conn.execute(delete(blob_extents).where(blob_extents.c.digest == d2))
    assert read(registry, d2) == tuned
    assert read(registry, d2, 300_000, 1_000_000) == tuned[300_000:1_300_000]
