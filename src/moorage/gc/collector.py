"""Online garbage collection: reachability from the database, small batched transactions,
storage deleted only after the metadata row is gone and committed.

A run, in order (each step safe to interrupt; the next run finishes the job):

1. forget soft-deleted tags whose restore window has passed;
2. per repository, in one write transaction that reads the graph and deletes: manifests no tag,
   restorable tag, index or subject reaches, pushed and pulled longer ago than the grace period;
3. drop repository links older than the grace period that no manifest of that repository uses;
4. blobs no manifest anywhere references and no link protects, in batches: delete the rows and
   queue their storage in `pending_deletions` (one transaction, which also drops their chunk
   recipes and keeps an object chunks still live in as their pack), then delete the bytes;
   then chunk rows no recipe references, queueing each pack left with no chunk and no blob;
5. upload sessions idle longer than the upload TTL: same two steps; so are chunk packs whose
   intent is older than the upload TTL and whose chunks never committed (a crashed job);
6. delete whatever storage is still queued, also what an interrupted run had claimed.

The protocol that keeps every acknowledged image whole:

- Re-check under the write. Candidates are read without locks; every delete statement then
  re-states the whole condition that made the row garbage (link: old and unreferenced in its
  repository; blob: old, referenced by no manifest anywhere, no link left; upload: idle and
  unleased) and runs inside the write. SQLite: one writer at a time. PostgreSQL: the rows are
  first locked with FOR UPDATE SKIP LOCKED (the collector never waits on a push, so never
  deadlocks with one), then the condition is re-read, so a push committed before the lock is
  seen and a later one waits and then finds the rows gone.
- A manifest push refreshes (created_at = now, row locks in digest order) the links of the
  blobs it references before its guard checks them, holds FOR SHARE on those blob rows, and a
  shared lock on its repository row; a manifest sweep takes that repository lock exclusively
  and reads the graph after it. So either the collector's delete came first (the push is
  refused with MANIFEST_BLOB_UNKNOWN) or the push did (the collector keeps the rows).
- Storage goes through a claim. Drain: claim queued rows (claimed_at, claimer; FOR UPDATE SKIP
  LOCKED) in one short transaction, delete the bytes outside any transaction (S3 calls never
  hold the SQLite write lock), then delete the queue rows. A blob commit records a key only if
  no claimed queue row names it: an unclaimed one is taken back (its bytes still exist); a
  claimed one, or reused content whose queue row is already gone, makes the upload keep its
  own bytes instead. Own keys are unique per commit on every store (filesystem keys carry the
  upload id), so a re-committed digest never shares a key with bytes being deleted.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..events.types import SYSTEM, Actor, GcCompleted, ManifestDeleted, UploadExpired, records
from ..metadata.uow import Database
from ..policy.graph import ManifestNode, RepoGraph, reachable
from ..progress import Progress, silent
from ..storage.base import BlobStore
from .reachability import gc_roots

log = logging.getLogger("moorage.gc")
BATCH = 1000
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(raw: str | float) -> float:
    """Seconds from `0`, `90`, `30m`, `24h`, `7d`."""
    if isinstance(raw, int | float):
        return float(raw)
    m = DURATION_RE.match(raw)
    if not m:
        raise ValueError(f"invalid duration {raw!r}: use e.g. 0, 90s, 30m, 24h, 7d")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


@dataclass
class GcReport:
    """Counts and bytes of one run (also what a dry run would do)."""

    dry_run: bool = False
    grace_period: float = 0.0
    deleted_tags_expired: int = 0
    manifests: int = 0
    manifest_bytes: int = 0
    links: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    chunks: int = 0
    chunk_bytes: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    packs_abandoned: int = 0
    storage_deleted: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        """Bytes of manifests, blobs and uploads the run freed (or would free)."""
        return self.manifest_bytes + self.blob_bytes + self.upload_bytes

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data, with `bytes_freed`."""
        return {**asdict(self), "bytes_freed": self.bytes_freed}


class GarbageCollector:
    """Runs collections against one database and blob store; safe while the registry serves."""

    def __init__(
        self,
        database: Database,
        blobs: BlobStore,
        grace_period: float = 86400.0,
        upload_ttl: float = 86400.0,
        restore_window: float = 7 * 86400.0,
        collect_untagged: bool = True,
        batch: int = BATCH,
    ) -> None:
        self.database = database
        self.blobs = blobs
        self.grace_period = grace_period
        self.upload_ttl = upload_ttl
        self.restore_window = restore_window
        self.collect_untagged = collect_untagged
        self.batch = batch

    def run(
        self, dry_run: bool = False, grace_period: float | None = None, trigger: str = "cli",
        upload_ttl: float | None = None, actor: Actor = SYSTEM, progress: Progress = silent,
    ) -> GcReport:
        """Collect (or with dry_run, count) everything unreachable and older than the grace;
        deletions and the finished run are events of `actor`; `progress` hears of each
        repository swept and each batch of storage deleted."""
        grace = self.grace_period if grace_period is None else grace_period
        ttl = self.upload_ttl if upload_ttl is None else upload_ttl
        report = GcReport(dry_run=dry_run, grace_period=grace)
        started = time.monotonic()
        with self.database.write() as uow:
            run_id = uow.gc.start_run(trigger, dry_run)
        log.info("gc started", extra={"run": run_id, "dry_run": dry_run, "grace_s": grace})
        status = "done"
        try:
            now = time.time()
            cutoff = now - grace
            report.deleted_tags_expired = self._purge_tags(now - self.restore_window, dry_run)
            doomed_ids = self._manifests(report, cutoff, dry_run, actor, progress)
            if not dry_run:
                self._links(report, cutoff)
            self._blobs(report, cutoff, dry_run, doomed_ids)
            self._chunks(report, cutoff, dry_run)
            self._uploads(report, now - ttl, dry_run, actor)
            self._packs(report, now - ttl, dry_run)
            if not dry_run:
                self._drain(report, take_over=True, progress=progress)
            if report.errors:
                status = "failed"
        except Exception as exc:
            status = "failed"
            report.errors.append(f"{type(exc).__name__}: {exc}")
            log.exception("gc failed", extra={"run": run_id})
        finally:
            report.seconds = round(time.monotonic() - started, 3)
            try:
                with self.database.write() as uow:
                    uow.gc.finish_run(run_id, status, report.to_dict())
                    if not dry_run:
                        uow.emit(records(GcCompleted(actor=actor, trigger=trigger,
                                                     report=report.to_dict())))
            except Exception:
                log.exception("could not record the gc run", extra={"run": run_id})
        log.info("gc finished", extra={"run": run_id, "status": status, **report.to_dict()})
        return report

    def expire_uploads(self, upload_ttl: float | None = None, actor: Actor = SYSTEM) -> GcReport:
        """Only step 5: end idle upload sessions and delete their storage (events of `actor`)."""
        ttl = self.upload_ttl if upload_ttl is None else upload_ttl
        report = GcReport()
        started = time.monotonic()
        self._uploads(report, time.time() - ttl, dry_run=False, actor=actor)
        report.seconds = round(time.monotonic() - started, 3)
        if report.uploads:
            log.info("uploads expired", extra={"uploads": report.uploads,
                                               "bytes": report.upload_bytes})
        return report

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent runs (any process), newest first."""
        with self.database.read() as uow:
            return uow.gc.runs(limit)

    def pending(self) -> tuple[int, int]:
        """(rows, bytes) queued for storage deletion."""
        with self.database.read() as uow:
            return uow.gc.pending_count()

    # -- steps --------------------------------------------------------------------------------

    def _purge_tags(self, before: float, dry_run: bool) -> int:
        if dry_run:
            with self.database.read() as uow:
                return uow.deletion.count_expired(before)
        with self.database.write() as uow:
            return uow.deletion.purge_deleted_tags(before)

    def _doomed(self, graph: RepoGraph, cutoff: float) -> list[ManifestNode]:
        roots = gc_roots(graph, cutoff, self.collect_untagged,
                         time.time() - self.restore_window)
        keep = reachable(graph, roots)
        return [m for i, m in graph.manifests.items() if i not in keep]

    def _sweep(self, repo_id: int, name: str, cutoff: float, actor: Actor
               ) -> list[ManifestNode]:
        # Decided on a graph read inside the write, under the repository's exclusive lock, so
        # no concurrent push can slip between the decision and the delete.
        with self.database.write() as uow:
            uow.repositories.lock(repo_id, exclusive=True)
            victims = self._doomed(uow.graph.graph(repo_id, name), cutoff)
            if victims:
                uow.graph.delete_manifests([v.id for v in victims])
                uow.emit(records(*(ManifestDeleted(actor=actor, repository=name,
                                                   digest=v.digest, by="gc") for v in victims)))
            return victims

    def _manifests(self, report: GcReport, cutoff: float, dry_run: bool, actor: Actor,
                   progress: Progress = silent) -> set[int]:
        with self.database.read() as uow:
            repos = uow.graph.repository_ids()
        doomed: set[int] = set()
        progress("repositories", 0, len(repos))
        for done, (repo_id, name) in enumerate(repos, 1):
            if dry_run:
                with self.database.snapshot() as uow:
                    graph = uow.graph.graph(repo_id, name, with_pulls=True)
                victims = self._doomed(graph, cutoff)
            else:
                victims = self._sweep(repo_id, name, cutoff, actor)
            if victims:
                doomed.update(v.id for v in victims)
                report.manifests += len(victims)
                report.manifest_bytes += sum(v.size for v in victims)
                log.info("gc manifests", extra={"repository": name, "count": len(victims),
                                                "dry_run": dry_run})
            progress("repositories", done, len(repos))
        return doomed

    def _links(self, report: GcReport, cutoff: float) -> None:
        while True:
            with self.database.read() as uow:
                pairs = uow.gc.stale_links(cutoff, self.batch)
            if not pairs:
                return
            with self.database.write() as uow:
                dropped = uow.gc.drop_links(pairs, cutoff)
            report.links += dropped
            if len(pairs) < self.batch or dropped == 0:
                return

    def _blobs(self, report: GcReport, cutoff: float, dry_run: bool, doomed: set[int]) -> None:
        after = ""
        seen: set[str] = set()
        while True:
            with self.database.read() as uow:
                page = uow.gc.blob_candidates(cutoff, after, self.batch)
            if not page:
                break
            after = page[-1][0]
            if dry_run:
                seen.update(d for d, _ in page)
                report.blobs += len(page)
                report.blob_bytes += sum(s for _, s in page)
            else:
                with self.database.write() as uow:
                    gone = uow.gc.delete_blobs([d for d, _ in page], cutoff)
                report.blobs += len(gone)
                report.blob_bytes += sum(s for _, _, s in gone)
                self._drain(report)
                log.info("gc blobs", extra={"deleted": report.blobs,
                                            "bytes": report.blob_bytes})
            if len(page) < self.batch:
                break
        if dry_run and doomed:
            sizes = self._orphaned_sizes(doomed, seen)
            report.blobs += len(sizes)
            report.blob_bytes += sum(sizes.values())

    def _chunks(self, report: GcReport, cutoff: float, dry_run: bool) -> None:
        """Chunk rows no recipe references (their packs are queued once empty). Chunk bytes
        are not in bytes_freed: a pack's bytes go when its last chunk does."""
        after = ""
        while True:
            with self.database.read() as uow:
                page = uow.chunks.candidates(cutoff, after, self.batch)
            if not page:
                return
            after = page[-1][0]
            if dry_run:
                gone = page
            else:
                with self.database.write() as uow:
                    gone = uow.chunks.delete([i for i, _ in page], cutoff)
            report.chunks += len(gone)
            report.chunk_bytes += sum(n for _, n in gone)
            if len(page) < self.batch:
                return

    def _orphaned_sizes(self, doomed: set[int], seen: Iterable[str]) -> dict[str, int]:
        """Blobs only the manifests this run would delete reference (beyond `seen`)."""
        with self.database.read() as uow:
            theirs = uow.graph.blob_refs_of(doomed) - set(seen)
            orphaned = theirs - uow.graph.referenced_elsewhere(theirs, doomed)
            return uow.graph.blob_sizes(orphaned)

    def _uploads(self, report: GcReport, before: float, dry_run: bool, actor: Actor) -> None:
        while True:
            with self.database.read() as uow:
                stale = uow.gc.stale_uploads(before, time.time(), self.batch)
            if not stale:
                return
            if dry_run:
                report.uploads += len(stale)
                report.upload_bytes += sum(o for _, _, o in stale)
                return
            with self.database.write() as uow:
                expired = uow.gc.expire_uploads([i for i, _, _ in stale], before)
                if expired:
                    uow.emit(records(*(UploadExpired(actor=actor, repository=repo, upload_id=i,
                                                     size=size)
                                       for i, _, size, repo in expired)))
            report.uploads += len(expired)
            report.upload_bytes += sum(o for _, _, o, _ in expired)
            self._drain(report)
            if len(stale) < self.batch or not expired:
                return

    def _packs(self, report: GcReport, before: float, dry_run: bool) -> None:
        """Packs a chunking job or delta push began before `before` and never recorded (it
        crashed between the write and the commit): queue their upload and object, forget the
        intent. A younger intent is a job still running and is left alone."""
        while True:
            with self.database.read() as uow:
                stale = uow.chunks.abandoned_packs(before, self.batch)
                if dry_run:
                    report.packs_abandoned += sum(
                        1 for k, _, _ in stale if not uow.chunks.packs_in_use([k]))
                    return
            if not stale:
                return
            with self.database.write() as uow:
                given_up = uow.chunks.forget_packs([k for k, _, _ in stale], before)
            report.packs_abandoned += len(given_up)
            if given_up:
                log.info("gc abandoned packs", extra={"packs": len(given_up)})
                self._drain(report)
            if len(stale) < self.batch or not given_up:
                return

    def _drain(self, report: GcReport, take_over: bool = False,
               progress: Progress = silent) -> None:
        """Delete queued storage: claim (one short transaction), delete the bytes outside any
        transaction, then forget the claimed rows. `take_over` also takes rows an earlier,
        interrupted run claimed."""
        claimer = uuid.uuid4().hex
        while True:
            with self.database.write() as uow:
                claimed = uow.gc.claim_pending(self.batch, claimer, take_over)
            if not claimed:
                return
            # The claim has committed: no transaction is open while storage is called.
            done: list[int] = []
            failed: list[str] = []
            for row_id, kind, key in claimed:
                try:
                    if kind == "blob":
                        self.blobs.delete_blob(key)
                    else:
                        self.blobs.abort_upload(key)
                except FileNotFoundError:
                    pass
                except Exception as exc:  # noqa: BLE001 - stays claimed; a later run retries
                    failed.append(f"{kind} {key}: {type(exc).__name__}: {exc}")
                    continue
                done.append(row_id)
            if done:
                with self.database.write() as uow:
                    uow.gc.confirm_pending(done)
            report.storage_deleted += len(done)
            progress("storage deleted", report.storage_deleted, None)
            if failed:
                report.errors.extend(failed[:10])
                log.error("gc could not delete storage", extra={"failed": len(failed)})
                return
            if len(claimed) < self.batch:
                return
