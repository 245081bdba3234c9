"""`moorage pull`: a ModelPack (or any artifact with file path annotations) into a directory,
fetching only the chunks missing from a local chunk cache; a layer without a recipe is a plain
blob GET that resumes with Range. Every file's digest is checked before it is moved in place."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from ..models.formats import FILEPATH_KEY, TITLE_KEY
from ..oci.digest import new_hasher
from ..upstream.client import UpstreamClient
from .files import OCI_MANIFEST, safe_target
from .push import Tally
from .remote import Remote

ACCEPT = (OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json")
FETCH_BYTES = 16 << 20  # chunk bytes asked for in one request


class ChunkCache:
    """Chunks on local disk, one file each under its id (written atomically)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, cid: str) -> Path:
        """Where chunk `cid` lives."""
        return self.root / cid[:2] / cid

    def has(self, cid: str) -> bool:
        """Whether the cache holds the chunk."""
        return self.path(cid).is_file()

    def put(self, cid: str, data: bytes) -> None:
        """Keep a chunk (after checking its id)."""
        from ..chunks.chunker import chunk_id

        if chunk_id(data) != cid:
            raise ValueError(f"chunk {cid} arrived with other bytes")
        target = self.path(cid)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)


def default_cache() -> Path:
    """~/.cache/moorage/chunks (or under $XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "moorage" / "chunks"


async def pull(client: UpstreamClient, repo: str, reference: str, target: Path,
               cache: ChunkCache, on_progress: Callable[[Tally], None] | None = None
               ) -> list[str]:
    """Pull `repo:reference` into `target`; returns the file paths written."""
    report = on_progress or (lambda _t: None)
    manifest = await client.get_manifest(repo, reference, ACCEPT)
    layers = json.loads(manifest.content).get("layers", [])
    plan = []
    for layer in layers:
        notes = layer.get("annotations") or {}
        name = notes.get(FILEPATH_KEY) or notes.get(TITLE_KEY)
        if not name:
            continue
        plan.append((safe_target(target, name), name, layer["digest"], int(layer["size"])))
    tally = Tally(total=sum(p[3] for p in plan))
    remote = Remote(client)
    delta = await remote.has_extension()
    for path, _, digest, size in plan:
        path.parent.mkdir(parents=True, exist_ok=True)
        safe_target(target, path.relative_to(target).as_posix())  # no link made meanwhile
        recipe = await remote.recipe(repo, digest) if delta else None
        part = path.with_name(path.name + ".part")
        if recipe is not None:
            await _by_recipe(remote, repo, recipe, cache, part, tally, report)
            _check(part, digest)
        else:
            await _plain(client, repo, digest, size, part, tally, report)
        os.replace(part, path)
    return [p[1] for p in plan]


async def _by_recipe(remote: Remote, repo: str, recipe: list[tuple[str, int]],
                     cache: ChunkCache, part: Path, tally: Tally,
                     report: Callable[[Tally], None]) -> None:
    lengths = dict(recipe)
    lacking = [cid for cid in dict.fromkeys(c for c, _ in recipe) if not cache.has(cid)]
    tally.skipped += sum(lengths[c] for c in lengths) - sum(lengths[c] for c in lacking)
    group: list[str] = []
    size = 0
    for cid in [*lacking, None]:
        if cid is not None:
            group.append(cid)
            size += lengths[cid]
        if group and (cid is None or size >= FETCH_BYTES):
            datas = await remote.fetch(repo, group)
            for gid, data in zip(group, datas, strict=True):
                await asyncio.to_thread(cache.put, gid, data)
                tally.sent += len(data)
            report(tally)
            group, size = [], 0
    with part.open("wb") as out:
        for cid, _ in recipe:
            out.write(cache.path(cid).read_bytes())
    report(tally)


async def _plain(client: UpstreamClient, repo: str, digest: str, size: int, part: Path,
                 tally: Tally, report: Callable[[Tally], None]) -> None:
    # a .part left by a killed pull resumes where it ended (the client checks the digest)
    offset = part.stat().st_size if part.exists() else 0
    if offset >= size:
        part.unlink(missing_ok=offset > size)
        if offset == size:
            tally.skipped += size
            return _check(part, digest)
        offset = 0
    hasher = new_hasher("sha256")
    if offset:
        with part.open("rb") as f:
            while data := f.read(1 << 20):
                hasher.update(data)
    tally.skipped += offset
    with part.open("ab") as out:
        async for data in client.get_blob(repo, digest, offset, hasher=hasher):
            out.write(data)
            tally.sent += len(data)
            report(tally)


def _check(path: Path, digest: str) -> None:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while data := f.read(1 << 20):
            h.update(data)
    if f"sha256:{h.hexdigest()}" != digest:
        path.unlink()
        raise ValueError(f"{path.name}: the assembled bytes do not hash to {digest}")
