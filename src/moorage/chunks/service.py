"""The chunk service: chunk a stored blob after push (dedup), and the internal API the delta
push/pull extension builds on (which chunks are missing, store chunks, commit a recipe).

A whole blob's own object is the pack of its own chunks. A blob that shares at least
`min_saving` of its bytes with chunks already stored is switched to its recipe: only its new
chunks are copied to a new pack, and its old object is queued for deletion unless chunks of
other recipes live in it. Every switch is one transaction that re-checks the blob and each
reused chunk (see metadata/queries/chunks.py); a rerun of a finished job does nothing.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import faults
from ..metadata.queries.chunks import CHUNKED_PREFIX, ChunkGone, ChunkRef
from ..oci.errors import DigestInvalid
from ..registry.access import NotFound
from ..storage.base import BlobStore
from .chunker import Cut, chunk_id, cut

if TYPE_CHECKING:
    from ..auth.authorizer import Authorizer
    from ..metadata.uow import Database
    from ..policy.quota import UploadQuota

log = logging.getLogger("moorage.chunks")
ATTEMPTS = 3  # a reused chunk collected meanwhile: chunk again (it is new now)


@dataclass(frozen=True, slots=True)
class RecipeEntry:
    """A chunk of a blob to commit from chunks the registry holds."""

    chunk_id: str
    length: int


class ChunkService:
    """Chunks blobs in `store` (the chunk-aware store) and records recipes in `database`."""

    def __init__(self, database: Database, store: BlobStore, avg_size: int = 64 << 10,
                 min_saving: float = 0.10, authorizer: Authorizer | None = None,
                 quota: UploadQuota | None = None) -> None:
        self.database = database
        self.quota = quota
        self.authorizer = authorizer
        self.store = store
        self.avg_size = avg_size
        self.min_saving = min_saving

    # -- the chunking job ---------------------------------------------------------------------

    def chunk_blob(self, digest: str) -> dict[str, Any]:
        """Chunk one stored blob and record its recipe (chunked when it shares enough)."""
        for _ in range(ATTEMPTS):
            with self.database.read() as uow:
                found = uow.chunks.blob(digest)
                done = found is not None and uow.chunks.has_recipe(digest)
            if found is None:
                return {"skipped": "the blob is gone"}
            size, key = found
            if done or key.startswith(CHUNKED_PREFIX):
                return {"skipped": "chunked already"}
            try:
                return self._chunk(digest, size, key)
            except ChunkGone:
                log.info("a reused chunk was collected; chunking again", extra={"digest": digest})
        raise ChunkGone(digest)

    def _chunk(self, digest: str, size: int, key: str) -> dict[str, Any]:
        cuts = list(cut(self.store.open_blob(key, 0, size), self.avg_size))
        with self.database.read() as uow:
            existing = uow.chunks.existing(c.chunk_id for c in cuts)
        shared = sum(c.length for c in cuts if c.chunk_id in existing)
        fresh = _first_of_each(cuts, existing)
        result = {"digest": digest, "size": size, "chunks": len(cuts), "shared_bytes": shared}
        if shared < self.min_saving * size or not size:
            # Worth nothing: the blob stays whole (sendfile, redirects), its object its pack.
            refs = _refs(cuts, {c.chunk_id: (key, c.offset) for c in fresh})
            with self.database.write() as uow:
                recorded = uow.chunks.record(digest, refs, chunked=False)
            return {**result, "layout": "whole", "recorded": recorded is not None}
        pack_key, handle, placed = self._write_pack(self._ranges(key, fresh))
        refs = _refs(cuts, placed)
        try:
            with self.database.write() as uow:
                queued = uow.chunks.record(digest, refs, chunked=True)
                if queued is not None and not uow.chunks.settle_pack(pack_key):
                    raise ChunkGone(digest)  # the GC gave the pack up meanwhile: chunk again
        except BaseException:
            self._give_up(pack_key, handle)
            raise
        if queued is None:
            self._give_up(pack_key, handle)  # the blob went, or another run recorded it first
            return {**result, "skipped": "recorded meanwhile or gone"}
        log.info("blob chunked", extra={"digest": digest, "shared_bytes": shared,
                                        "new_chunks": len(fresh), "pack": pack_key})
        return {**result, "layout": "chunked", "pack": pack_key,
                "new_bytes": sum(c.length for c in fresh), "old_object_queued": bool(queued)}

    def _ranges(self, key: str, wanted: Sequence[Cut]) -> Iterator[tuple[str, bytes]]:
        """(chunk id, bytes) of `wanted`, read from the blob with adjacent chunks merged."""
        i = 0
        while i < len(wanted):
            j = i + 1
            while j < len(wanted) and wanted[j].offset == wanted[j - 1].offset + \
                    wanted[j - 1].length and wanted[j].offset - wanted[i].offset < 8 << 20:
                j += 1
            start = wanted[i].offset
            end = wanted[j - 1].offset + wanted[j - 1].length
            data = b"".join(self.store.open_blob(key, start, end - start))
            for c in wanted[i:j]:
                yield c.chunk_id, data[c.offset - start:c.offset - start + c.length]
            i = j

    def _write_pack(self, parts: Iterable[tuple[str, bytes]]
                    ) -> tuple[str, str, dict[str, tuple]]:
        """Store chunks in a new pack through the upload contract: (its key, its upload handle,
        {id: (key, off)}). Its intent is committed first; the caller's transaction that records
        its chunks settles it (`settle_pack`), or `_give_up` removes both."""
        # A digest-shaped name (every store's key rules accept it), never content's own.
        name = f"pack:{secrets.token_hex(32)}"
        handle = self.store.create_upload(uuid.uuid4().hex)
        key = self.store.committed_key(handle, name)
        with self.database.write() as uow:
            uow.chunks.intend_pack(key, handle)
        writer = self.store.open_upload(handle, 0)
        offsets: dict[str, int] = {}
        at = 0
        try:
            for cid, data in parts:
                if cid in offsets:
                    continue
                writer.write(data)
                offsets[cid] = at
                at += len(data)
            committed = writer.commit(name)
        except BaseException:
            writer.close()
            self._give_up(key, handle)
            raise
        writer.close()
        if committed != key:  # a store whose committed_key lies would leak packs: fail loudly
            self._give_up(committed, handle)
            raise RuntimeError(f"the store committed {committed}, not {key}")
        faults.point("chunks.pack_written")
        return key, handle, {cid: (key, off) for cid, off in offsets.items()}

    def _give_up(self, key: str, handle: str) -> None:
        """Remove a pack whose chunks were not recorded: its bytes, then its intent (a crash
        between the two leaves the intent, and the GC finishes the job)."""
        self.store.abort_upload(handle)
        self.store.delete_blob(key)
        with self.database.write() as uow:
            uow.chunks.forget_packs([key], float("inf"), queue=False)

    # -- the internal API for delta push and pull ---------------------------------------------

    def missing(self, ids: Iterable[str]) -> list[str]:
        """Those of `ids` the registry holds no chunk for, in the order given."""
        wanted = list(dict.fromkeys(ids))
        with self.database.read() as uow:
            have = uow.chunks.existing(wanted)
        return [i for i in wanted if i not in have]

    def store_chunks(self, datas: Iterable[bytes]) -> list[str]:
        """Store chunks (ids computed here, never trusted) in one new pack; returns their ids.
        Unreferenced, they live for the GC grace period: commit a recipe before it ends."""
        ids: list[str] = []
        lengths: dict[str, int] = {}

        def parts() -> Iterator[tuple[str, bytes]]:
            for data in datas:
                ids.append(chunk_id(data))
                lengths[ids[-1]] = len(data)
                yield ids[-1], data

        key, handle, placed = self._write_pack(parts())
        refs = [ChunkRef(cid, 0, lengths[cid], k, off) for cid, (k, off) in placed.items()]
        try:
            with self.database.write() as uow:
                uow.chunks.add_chunks(refs)
                if not uow.chunks.settle_pack(key):
                    raise ChunkGone(key)  # the GC gave the pack up meanwhile
        except BaseException:
            self._give_up(key, handle)
            raise
        return ids

    def commit_recipe(self, repository: str, digest: str, recipe: Sequence[RecipeEntry]
                      ) -> bool:
        """Record blob `digest` as the concatenation of held chunks and link it to
        `repository`, after verifying that the bytes hash to it. False when it was recorded
        already (then only linked). Raises DigestInvalid, or ChunkGone for a missing chunk."""
        refs, at = [], 0
        for entry in recipe:
            refs.append(ChunkRef(entry.chunk_id, at, entry.length))
            at += entry.length
        algorithm, _, hex_ = digest.partition(":")
        if algorithm != "sha256":
            raise DigestInvalid(detail={"digest": digest})
        if self.quota is not None:
            from ..auth.scopes import namespace_of

            self.quota.check(self.database, namespace_of(repository), at, digest)
        h = hashlib.sha256()
        for data in self._concatenation(refs):
            h.update(data)
        if h.hexdigest() != hex_:
            raise DigestInvalid(detail={"digest": digest, "reason": "the chunks hash otherwise"})
        with self.database.write() as uow:
            created = uow.chunks.record_blob(digest, at, refs)
            uow.blobs.link(repository, digest)
        return created

    def recipe(self, repository: str, digest: str) -> list[tuple[str, int]] | None:
        """(chunk id, length) of a blob `repository` holds; None when it holds none or the
        blob has no recorded recipe."""
        with self.database.read() as uow:
            if uow.blobs.repository_blob(repository, digest) is None:
                return None
            return uow.chunks.recipe(digest) or None

    def chunk_lengths(self, ids: Sequence[str], repository: str | None = None
                      ) -> dict[str, int]:
        """The length of each of `ids` the registry holds; with `repository`, only chunks of
        blobs that repository links (the others are as unknown as chunks never stored)."""
        with self.database.read() as uow:
            held = uow.chunks.locations(ids)
            if repository is not None:
                mine = uow.chunks.of_repository(repository, held)
                held = {cid: where for cid, where in held.items() if cid in mine}
        return {cid: where[2] for cid, where in held.items()}

    def read_chunks(self, ids: Sequence[str]) -> list[bytes]:
        """The bytes of held chunks, in order (ChunkGone when one was collected meanwhile)."""
        with self.database.read() as uow:
            where = uow.chunks.locations(ids)
        out = []
        for cid in ids:
            if cid not in where:
                raise ChunkGone(cid)
            key, off, length = where[cid]
            out.append(b"".join(self.store.open_blob(key, off, length)))
        return out

    def _concatenation(self, refs: Sequence[ChunkRef]) -> Iterator[bytes]:
        with self.database.read() as uow:
            where = uow.chunks.locations([r.chunk_id for r in refs])
        for r in refs:
            if r.chunk_id not in where:
                raise ChunkGone(r.chunk_id)
            key, off, length = where[r.chunk_id]
            if length != r.length:
                raise DigestInvalid(detail={"chunk": r.chunk_id, "reason": "wrong length"})
            yield from self.store.open_blob(key, off, length)

    # -- stats --------------------------------------------------------------------------------

    def namespace_stats(self, actor: Any, namespace: str) -> dict[str, Any]:
        """One namespace's dedup figures, for a caller who may view the namespace (else 404)."""
        from ..auth.authorizer import Action
        from ..auth.authorizer import namespace as resource

        if self.authorizer is not None and not self.authorizer.allows(
                actor, Action.VIEW_NAMESPACE, resource(namespace)):
            raise NotFound(f"no namespace {namespace!r}")
        empty = {"logical": 0, "stored": 0, "saved": 0, "ratio": 1.0}
        return {"namespace": namespace, **self.stats(namespace).get(namespace, empty)}

    def stats(self, namespace: str | None = None) -> dict[str, dict[str, Any]]:
        """Per namespace: logical and stored bytes, bytes saved and the dedup ratio."""
        with self.database.read() as uow:
            raw = uow.chunks.dedup(namespace)
        return {name: {**v, "ratio": round(v["logical"] / v["stored"], 3) if v["stored"] else 1.0}
                for name, v in raw.items()}


def _first_of_each(cuts: Sequence[Cut], existing: set[str]) -> list[Cut]:
    """The first occurrence of each chunk not stored yet, in blob order."""
    seen = set(existing)
    out = []
    for c in cuts:
        if c.chunk_id not in seen:
            seen.add(c.chunk_id)
            out.append(c)
    return out


def _refs(cuts: Sequence[Cut], placed: dict[str, tuple]) -> list[ChunkRef]:
    """The recipe: each chunk placed in a pack the first time, reused after that."""
    refs, done = [], set()
    for c in cuts:
        where = placed.get(c.chunk_id)
        if where is not None and c.chunk_id not in done:
            done.add(c.chunk_id)
            refs.append(ChunkRef(c.chunk_id, c.offset, c.length, where[0], where[1]))
        else:
            refs.append(ChunkRef(c.chunk_id, c.offset, c.length))
    return refs
