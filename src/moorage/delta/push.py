"""`moorage push`: a directory (or file) as a ModelPack artifact, sending only the chunks the
registry lacks; without the extension, plain OCI chunked uploads. A rerun after a kill sends
only what the registry does not hold yet (stored chunks outlive the client)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..upstream.client import UpstreamClient
from .files import (
    OCI_MANIFEST,
    LocalBlob,
    chunk_file,
    model_config,
    model_files,
    model_manifest,
    read_parts,
    read_range,
    sha256_of,
)
from .remote import Remote

DEFAULT_AVG = 64 << 10


@dataclass(slots=True)
class Tally:
    """Bytes of the push: sent, skipped (the registry had them), and in all."""

    total: int = 0
    sent: int = 0
    skipped: int = 0


Progress = Callable[[Tally], None]


async def push(client: UpstreamClient, source: Path, repo: str, tag: str, parallel: int = 4,
               batch_bytes: int = 8 << 20, on_progress: Progress | None = None,
               use_delta: bool = True) -> str:
    """Push `source` as `repo:tag` (by delta when `use_delta` and the registry can); returns
    the manifest's digest."""
    remote = Remote(client)
    delta = use_delta and await remote.has_extension()
    avg = await remote.avg_chunk_size(DEFAULT_AVG) if delta else DEFAULT_AVG
    files = model_files(source)
    tally = Tally(total=sum(p.stat().st_size for p, _ in files))
    report = on_progress or (lambda _t: None)
    blobs: list[LocalBlob] = []
    for path, name in files:
        blob = await asyncio.to_thread(chunk_file, path, name, avg)
        blobs.append(blob)
        if await client.head_blob(repo, blob.digest) is not None:
            tally.skipped += blob.size
        elif delta:
            await _delta_blob(remote, repo, blob, tally, parallel, batch_bytes, report)
        else:
            await _plain_blob(client, repo, blob, tally, report)
        report(tally)
    config = model_config(repo.rsplit("/", 1)[-1], blobs)
    manifest = model_manifest(config, blobs)
    config_digest = sha256_of(config)
    if await client.head_blob(repo, config_digest) is None:
        await client.push_blob(repo, config_digest, _once(config), len(config))
    return await client.put_manifest(repo, tag, OCI_MANIFEST, manifest)


async def _once(data: bytes):  # type: ignore[no-untyped-def]
    yield data


async def _plain_blob(client: UpstreamClient, repo: str, blob: LocalBlob, tally: Tally,
                      report: Progress) -> None:
    async def source(offset: int):  # type: ignore[no-untyped-def]
        for data in read_parts(blob.path, offset):
            tally.sent += len(data)
            report(tally)
            yield data

    await client.push_blob_from(repo, blob.digest, source, blob.size)


async def _delta_blob(remote: Remote, repo: str, blob: LocalBlob, tally: Tally, parallel: int,
                      batch_bytes: int, report: Progress) -> None:
    first: dict[str, tuple[int, int]] = {}
    for offset, length, cid in blob.chunks:
        first.setdefault(cid, (offset, length))
    missing = await remote.missing(repo, list(first))
    wanted = [(cid, *first[cid]) for cid in first if cid in missing]
    tally.skipped += blob.size - sum(n for _, _, n in wanted)
    report(tally)
    batches: list[list[tuple[str, int, int]]] = [[]]
    size = 0
    for item in wanted:
        if batches[-1] and size + item[2] > batch_bytes:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += item[2]
    gate = asyncio.Semaphore(max(1, parallel))

    async def send(batch: list[tuple[str, int, int]]) -> None:
        async with gate:
            datas = await asyncio.to_thread(
                lambda: [read_range(blob.path, off, n) for _, off, n in batch])
            ids = await remote.store(repo, datas)
            if ids != [cid for cid, _, _ in batch]:
                raise RuntimeError(f"{blob.name} changed while it was pushed")
            tally.sent += sum(len(d) for d in datas)
            report(tally)

    await asyncio.gather(*(send(b) for b in batches if b))
    await remote.commit(repo, blob.digest, [(cid, n) for _, n, cid in blob.chunks])
