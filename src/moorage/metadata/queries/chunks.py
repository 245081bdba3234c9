"""Chunks, blob recipes and packs: look-ups, the one-transaction recipe commit, the GC deletes.

A recipe insert holds FOR SHARE on every chunk row it reuses and re-checks that they exist; the
collector locks chunk rows FOR UPDATE SKIP LOCKED and re-states "no recipe references it" in its
delete. So a reuse and a GC delete of one chunk always conflict in the database: either the
delete came first (the recipe insert sees the chunk missing and is refused) or the reuse did
(the collector finds a recipe and keeps the row).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, exists, func, or_, select, update

from ..schema import (
    blob_chunks,
    blob_extents,
    blobs,
    chunk_pack_intents,
    chunks,
    pending_deletions,
    repositories,
    repository_blobs,
)

if TYPE_CHECKING:
    from ..uow import UnitOfWork

BATCH = 500
# The storage key of a chunked blob: its bytes are its recipe, there is no object of its own.
CHUNKED_PREFIX = "chunked:"


def chunked_key(digest: str) -> str:
    """The storage key a chunked blob is recorded under."""
    return CHUNKED_PREFIX + digest


@dataclass(frozen=True, slots=True)
class Piece:
    """One chunk of a blob's recipe, with where its bytes are."""

    offset: int  # in the blob
    length: int
    pack_key: str
    pack_offset: int


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """A chunk of a recipe being recorded: its id, place in the blob, and (if new) in a pack."""

    chunk_id: str
    offset: int
    length: int
    pack_key: str | None = None  # None: an existing chunk row is reused
    pack_offset: int = 0


class ChunkGone(Exception):
    """A chunk the recipe reuses was collected meanwhile (chunk again)."""


def _batches(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), BATCH):
        yield items[i:i + BATCH]


def _unused_chunk(cutoff: float) -> Any:
    """Chunks no recipe references, older than cutoff."""
    return and_(chunks.c.created_at < cutoff,
                ~exists().where(blob_chunks.c.chunk_id == chunks.c.id))


class ChunkQueries:
    """Chunk statements within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    # -- look-ups -----------------------------------------------------------------------------

    def existing(self, ids: Iterable[str]) -> set[str]:
        """Those of `ids` that have a chunk row."""
        wanted = sorted(set(ids))
        found: set[str] = set()
        for batch in _batches(wanted):
            found.update(self.conn.execute(
                select(chunks.c.id).where(chunks.c.id.in_(list(batch)))).scalars())
        return found

    def locations(self, ids: Iterable[str]) -> dict[str, tuple[str, int, int]]:
        """{id: (pack key, pack offset, length)} of those of `ids` that are stored."""
        out: dict[str, tuple[str, int, int]] = {}
        for batch in _batches(sorted(set(ids))):
            for i, k, o, n in self.conn.execute(
                    select(chunks.c.id, chunks.c.pack_key, chunks.c.pack_offset, chunks.c.length)
                    .where(chunks.c.id.in_(list(batch)))):
                out[i] = (k, int(o), int(n))
        return out

    def of_repository(self, repository: str, ids: Iterable[str]) -> set[str]:
        """Those of `ids` that a blob linked to `repository` is made of (repository scoping: a
        chunk id never opens another repository's content)."""
        found: set[str] = set()
        for batch in _batches(sorted(set(ids))):
            found |= set(self.conn.execute(
                select(blob_chunks.c.chunk_id).distinct()
                .join(repository_blobs, repository_blobs.c.digest == blob_chunks.c.digest)
                .join(repositories, repositories.c.id == repository_blobs.c.repository_id)
                .where(repositories.c.name == repository,
                       blob_chunks.c.chunk_id.in_(list(batch)))).scalars())
        return found

    def has_recipe(self, digest: str) -> bool:
        """True when the blob's recipe is recorded."""
        return self.conn.execute(
            select(blob_chunks.c.seq).where(blob_chunks.c.digest == digest).limit(1)
        ).first() is not None

    def recipe_size(self, digest: str) -> int | None:
        """The bytes the blob's recipe assembles (None without a recipe)."""
        row = self.conn.execute(select(func.count(), func.sum(blob_chunks.c.length)).where(
            blob_chunks.c.digest == digest)).first()
        return int(row[1]) if row and row[0] else None

    def recipe(self, digest: str) -> list[tuple[str, int]]:
        """The blob's recipe as (chunk id, length) in order (empty without one)."""
        return [(str(r[0]), int(r[1])) for r in self.conn.execute(
            select(blob_chunks.c.chunk_id, blob_chunks.c.length)
            .where(blob_chunks.c.digest == digest).order_by(blob_chunks.c.seq))]

    def blob(self, digest: str) -> tuple[int, str] | None:
        """(size, storage key) of a recorded blob."""
        row = self.conn.execute(
            select(blobs.c.size, blobs.c.storage_key).where(blobs.c.digest == digest)).first()
        return (int(row[0]), str(row[1])) if row else None

    def extents(self, digest: str, start: int, limit: int) -> list[Piece]:
        """The blob's merged runs of packs that end after `start`, in order, at most `limit`
        (empty for a recipe recorded before extents were: read its `pieces`)."""
        first = self.conn.execute(_FIRST_EXTENT, {"digest": digest, "start": start}).scalar()
        if first is None:
            return []
        return [Piece(*r) for r in self.conn.execute(_EXTENTS, {
            "digest": digest, "first": first, "limit": limit})]

    def pieces(self, digest: str, start: int, limit: int = BATCH) -> list[Piece]:
        """The recipe's chunks that end after `start`, in order, at most `limit`."""
        first = self.conn.execute(_FIRST, {"digest": digest, "start": start}).scalar()
        return [Piece(*r) for r in self.conn.execute(_PIECES, {
            "digest": digest, "first": first or 0, "limit": limit})]

    # -- recording ----------------------------------------------------------------------------

    def record(self, digest: str, refs: Sequence[ChunkRef], chunked: bool) -> str | None:
        """Insert the new chunk rows and the blob's recipe, and with `chunked` switch the blob
        to its recipe, queueing its old object's deletion unless chunks live in it. Returns the
        old key queued (or ""), None when the blob is gone or already has a recipe; raises
        ChunkGone when a reused chunk was collected."""
        conn = self.conn
        row = conn.execute(
            select(blobs.c.storage_key).where(blobs.c.digest == digest).with_for_update()
        ).first()
        if row is None or self.has_recipe(digest):
            return None
        old_key = str(row[0])
        new = {r.chunk_id: r for r in refs if r.pack_key is not None}
        reused = sorted({r.chunk_id for r in refs if r.pack_key is None} - set(new))
        for batch in _batches(reused):
            # FOR SHARE: the collector's delete of these rows waits for this commit, then finds
            # the recipe (see the module docstring).
            found = set(conn.execute(
                select(chunks.c.id).where(chunks.c.id.in_(list(batch)))
                .with_for_update(read=True)).scalars())
            if len(found) < len(batch):
                raise ChunkGone(digest)
        now = time.time()
        self.add_chunks(list(new.values()), now)
        conn.execute(blob_chunks.insert(), [
            {"digest": digest, "seq": i, "chunk_id": r.chunk_id, "offset": r.offset,
             "length": r.length} for i, r in enumerate(refs)])
        self._record_extents(digest, refs)
        if not chunked:
            return ""
        conn.execute(update(blobs).where(blobs.c.digest == digest).values(
            layout="chunked", storage_key=chunked_key(digest)))
        if self._pack_in_use(old_key):
            return ""
        self._queue(old_key, digest, 0, now)
        return old_key

    def record_blob(self, digest: str, size: int, refs: Sequence[ChunkRef]) -> bool:
        """Record a new blob made of existing chunks (the delta push commit); False when the
        digest is recorded already. Raises ChunkGone when a chunk was collected."""
        conn = self.conn
        if conn.execute(select(blobs.c.digest).where(blobs.c.digest == digest)).first():
            return False
        conn.execute(self.uow.store._insert(blobs).values(
            digest=digest, size=size, storage_key=chunked_key(digest), created_at=time.time(),
            layout="chunked").on_conflict_do_nothing(index_elements=["digest"]))
        from . import usage

        usage.on_blob_recorded(conn, digest, size)
        return self.record(digest, refs, chunked=False) is not None

    def _record_extents(self, digest: str, refs: Sequence[ChunkRef]) -> None:
        """The recipe's runs, from where its chunk rows say the bytes are (a new chunk another
        job recorded first lives in that job's pack, not in the one just written)."""
        where = self.locations(r.chunk_id for r in refs)
        runs: list[dict[str, Any]] = []
        for r in refs:
            key, at, _ = where[r.chunk_id]
            last = runs[-1] if runs else None
            if last is not None and last["pack_key"] == key and \
                    last["pack_offset"] + last["length"] == at and \
                    last["offset"] + last["length"] == r.offset:
                last["length"] += r.length
            else:
                runs.append({"digest": digest, "offset": r.offset, "length": r.length,
                             "pack_key": key, "pack_offset": at})
        for batch in _batches(runs):
            self.conn.execute(blob_extents.insert(), list(batch))

    def add_chunks(self, refs: Sequence[ChunkRef], now: float | None = None) -> None:
        """Record chunks stored in a pack (an id stored already keeps its row); without a
        recipe, only the GC grace period protects them."""
        if refs:
            now = time.time() if now is None else now
            # In id order: two jobs adding the same new chunks wait on each other, never
            # deadlock (PostgreSQL).
            self.conn.execute(self.uow.store._insert(chunks).on_conflict_do_nothing(
                index_elements=["id"]), [
                {"id": r.chunk_id, "pack_key": r.pack_key, "pack_offset": r.pack_offset,
                 "length": r.length, "created_at": now}
                for r in sorted(refs, key=lambda r: r.chunk_id)])

    # -- packs being written ------------------------------------------------------------------

    def intend_pack(self, key: str, upload: str, now: float | None = None) -> None:
        """Record that pack `key` is about to be written through upload `upload` (commit this
        before the first byte is written)."""
        self.conn.execute(chunk_pack_intents.insert().values(
            pack_key=key, upload=upload, created_at=time.time() if now is None else now))

    def settle_pack(self, key: str) -> bool:
        """End pack `key`'s intent in the transaction that records its chunks; a pack no chunk
        row points into (all its chunks were recorded meanwhile by another) is queued for
        deletion. False when the intent is gone (the GC took the pack: refuse the commit)."""
        gone = self.conn.execute(delete(chunk_pack_intents).where(
            chunk_pack_intents.c.pack_key == key)).rowcount
        if not gone:
            return False
        if not self._pack_in_use(key):
            self._queue(key, None, 0, time.time())
        return True

    def abandoned_packs(self, cutoff: float, limit: int) -> list[tuple[str, str, float]]:
        """(pack key, upload handle, created at) of intents older than `cutoff`."""
        return [(str(k), str(u), float(t)) for k, u, t in self.conn.execute(
            select(chunk_pack_intents.c.pack_key, chunk_pack_intents.c.upload,
                   chunk_pack_intents.c.created_at)
            .where(chunk_pack_intents.c.created_at < cutoff)
            .order_by(chunk_pack_intents.c.created_at).limit(limit))]

    def pack_intents(self, keys: Sequence[str]) -> set[str]:
        """Those of `keys` that are packs being written."""
        return set(self.conn.execute(select(chunk_pack_intents.c.pack_key).where(
            chunk_pack_intents.c.pack_key.in_(list(keys)))).scalars()) if keys else set()

    def forget_packs(self, keys: Sequence[str], cutoff: float, queue: bool = True
                     ) -> list[tuple[str, str]]:
        """Delete the intents among `keys` still older than `cutoff` (locked, re-checked) and,
        with `queue`, queue the storage of those no chunk row points into (their upload and
        their committed object). Returns (pack key, upload) of the packs given up."""
        conn = self.conn
        locked = list(conn.execute(
            select(chunk_pack_intents.c.pack_key, chunk_pack_intents.c.upload)
            .where(chunk_pack_intents.c.pack_key.in_(list(keys)),
                   chunk_pack_intents.c.created_at < cutoff)
            .order_by(chunk_pack_intents.c.pack_key).with_for_update(skip_locked=True)))
        if not locked:
            return []
        conn.execute(delete(chunk_pack_intents).where(
            chunk_pack_intents.c.pack_key.in_([k for k, _ in locked]),
            chunk_pack_intents.c.created_at < cutoff))
        now = time.time()
        given_up = []
        for key, upload in locked:
            if self._pack_in_use(key):
                continue  # its chunks were recorded: the chunk rows keep it now
            given_up.append((str(key), str(upload)))
            if queue:
                self.conn.execute(pending_deletions.insert().values(
                    kind="upload", storage_key=upload, digest=None, size=0, queued_at=now))
                self._queue(key, None, 0, now)
        return given_up

    def _pack_in_use(self, key: str) -> bool:
        in_pack = self.conn.execute(
            select(chunks.c.id).where(chunks.c.pack_key == key).limit(1)).first()
        named = self.conn.execute(
            select(blobs.c.digest).where(blobs.c.storage_key == key).limit(1)).first()
        return in_pack is not None or named is not None

    def _queue(self, key: str, digest: str | None, size: int, now: float) -> None:
        self.conn.execute(pending_deletions.insert().values(
            kind="blob", storage_key=key, digest=digest, size=size, queued_at=now))

    # -- garbage collection -------------------------------------------------------------------

    def forget_recipes(self, digests: Sequence[str]) -> None:
        """Delete the recipes of blobs whose rows were just deleted (same transaction)."""
        for batch in _batches(list(digests)):
            self.conn.execute(delete(blob_chunks).where(blob_chunks.c.digest.in_(list(batch))))
            self.conn.execute(delete(blob_extents).where(
                blob_extents.c.digest.in_(list(batch))))

    def packs_in_use(self, keys: Iterable[str]) -> set[str]:
        """Those of `keys` some chunk row points into."""
        wanted = sorted(set(keys))
        used: set[str] = set()
        for batch in _batches(wanted):
            used.update(self.conn.execute(select(chunks.c.pack_key).distinct().where(
                chunks.c.pack_key.in_(list(batch)))).scalars())
        return used

    def candidates(self, cutoff: float, after: str, limit: int) -> list[tuple[str, int]]:
        """A page of collectable chunks (id, length) by id after `after`."""
        return [(i, n) for i, n in self.conn.execute(
            select(chunks.c.id, chunks.c.length)
            .where(chunks.c.id > after, _unused_chunk(cutoff))
            .order_by(chunks.c.id).limit(limit))]

    def delete(self, ids: Sequence[str], cutoff: float) -> list[tuple[str, int]]:
        """Delete those chunk rows still unused (locked, then the condition re-stated) and queue
        every pack left with no chunk and no blob naming it. Returns (id, length) deleted."""
        conn = self.conn
        locked = list(conn.execute(
            select(chunks.c.id).where(chunks.c.id.in_(list(ids)), _unused_chunk(cutoff))
            .order_by(chunks.c.id).with_for_update(skip_locked=True)).scalars())
        if not locked:
            return []
        gone = [(i, k, n) for i, k, n in conn.execute(
            delete(chunks).where(chunks.c.id.in_(locked), _unused_chunk(cutoff))
            .returning(chunks.c.id, chunks.c.pack_key, chunks.c.length))]
        now = time.time()
        for key in sorted({k for _, k, _ in gone}):
            if not self._pack_in_use(key):
                self._queue(key, None, 0, now)
        return [(i, n) for i, _, n in gone]

    # -- stats --------------------------------------------------------------------------------

    def dedup(self, namespace: str | None = None) -> dict[str, dict[str, int]]:
        """Per namespace: `logical` bytes of the distinct blobs it links, `stored` bytes they
        take (distinct chunks of recipes, whole blobs without one) and `saved`."""
        ns = func.substr(repositories.c.name, 1,
                         func.coalesce(func.nullif(func.instr(repositories.c.name, "/"), 0) - 1,
                                       func.length(repositories.c.name))) \
            if self.uow.dialect == "sqlite" else func.split_part(repositories.c.name, "/", 1)
        held = (select(ns.label("ns"), repository_blobs.c.digest)
                .join(repositories, repositories.c.id == repository_blobs.c.repository_id))
        if namespace is not None:
            held = held.where(or_(repositories.c.name == namespace,
                                  repositories.c.name.like(namespace + "/%")))
        held_sq = held.distinct().subquery()
        logical = {n: int(s) for n, s in self.conn.execute(
            select(held_sq.c.ns, func.sum(blobs.c.size))
            .join(blobs, blobs.c.digest == held_sq.c.digest).group_by(held_sq.c.ns))}
        plain = {n: int(s) for n, s in self.conn.execute(
            select(held_sq.c.ns, func.sum(blobs.c.size))
            .join(blobs, blobs.c.digest == held_sq.c.digest)
            .where(~exists().where(blob_chunks.c.digest == blobs.c.digest))
            .group_by(held_sq.c.ns))}
        used = (select(held_sq.c.ns, blob_chunks.c.chunk_id)
                .join(blob_chunks, blob_chunks.c.digest == held_sq.c.digest)
                .distinct().subquery())
        chunked = {n: int(s) for n, s in self.conn.execute(
            select(used.c.ns, func.sum(chunks.c.length))
            .join(chunks, chunks.c.id == used.c.chunk_id).group_by(used.c.ns))}
        out = {}
        for name, size in sorted(logical.items()):
            stored = plain.get(name, 0) + chunked.get(name, 0)
            out[name] = {"logical": size, "stored": stored, "saved": max(size - stored, 0)}
        return out


_PIECES = (
    select(blob_chunks.c.offset, blob_chunks.c.length, chunks.c.pack_key, chunks.c.pack_offset)
    .join(chunks, chunks.c.id == blob_chunks.c.chunk_id)
    .where(blob_chunks.c.digest == bindparam("digest"),
           blob_chunks.c.offset >= bindparam("first"))
    .order_by(blob_chunks.c.offset)
    .limit(bindparam("limit"))
)
# Offsets grow with seq: the piece holding `start` is the last one starting at or before it.
_FIRST = select(func.max(blob_chunks.c.offset)).where(
    blob_chunks.c.digest == bindparam("digest"), blob_chunks.c.offset <= bindparam("start"))
_EXTENTS = (
    select(blob_extents.c.offset, blob_extents.c.length, blob_extents.c.pack_key,
           blob_extents.c.pack_offset)
    .where(blob_extents.c.digest == bindparam("digest"),
           blob_extents.c.offset >= bindparam("first"))
    .order_by(blob_extents.c.offset)
    .limit(bindparam("limit"))
)
_FIRST_EXTENT = select(func.max(blob_extents.c.offset)).where(
    blob_extents.c.digest == bindparam("digest"), blob_extents.c.offset <= bindparam("start"))
