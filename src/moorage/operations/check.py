"""`moorage check`: metadata against storage, both ways, with a careful repair.

Rows whose bytes are missing, short or (with `deep`) do not hash to their digest; manifest
references to blobs with no row; objects in the store no row, pending deletion or live upload
knows; chunk packs whose intent is older than the grace age and whose chunks never committed
(a chunking job or delta push that crashed between writing the pack and recording it). Every finding is re-checked before it is reported, since the server keeps running: a GC
that deletes a row and then its bytes, or a commit that writes bytes and then its row, is never
mistaken for damage, and objects younger than the grace age are never judged at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from ..auth.authorizer import SERVER, Action, Authorizer, OpenAuthorizer
from ..metadata.uow import Database
from ..oci.digest import new_hasher, parse_digest
from ..progress import Progress, silent
from ..storage.base import BlobStore, StoredObject

PAGE = 500
LOOKUPS = 8  # HEAD requests in flight at once (S3); cheap stats on files


@dataclass
class Finding:
    """One thing wrong, named by digest and/or storage key."""

    kind: str  # missing | size | corrupt | dangling | orphan | pack
    digest: str | None
    key: str | None
    detail: str
    repaired: str | None = None  # what --repair did, None when it could not

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckReport:
    """What a check looked at and what it found."""

    blobs: int = 0
    objects: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Nothing found, or everything found repaired."""
        return all(f.repaired for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"blobs": self.blobs, "objects": self.objects, "clean": self.clean,
                "findings": [f.as_dict() for f in self.findings]}


class IntegrityCheck:
    """Compares the database's blob rows with the blob store (server admins only)."""

    def __init__(self, database: Database, store: BlobStore, authorizer: Authorizer | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.database, self.store = database, store
        self.authorizer = authorizer or OpenAuthorizer()
        self.clock = clock

    def run(self, actor: Any, deep: bool = False, repair: bool = False, grace: float = 3600.0,
            progress: Progress | None = None) -> CheckReport:
        """Check everything once as `actor`; with `repair`, fix what can be fixed safely."""
        self.authorizer.require(actor, Action.ADMIN_SERVER, SERVER, "check the registry")
        report = CheckReport()
        tick = progress or silent
        with ThreadPoolExecutor(LOOKUPS) as pool:
            self._check_rows(report, deep, pool, tick)
        self._check_references(report)
        self._check_objects(report, grace, tick)
        self._check_packs(report, grace)
        if repair:
            for finding in report.findings:
                self._repair(finding)
        return report

    # -- rows -> storage ---------------------------------------------------------------------

    def _check_rows(self, report: CheckReport, deep: bool, pool: ThreadPoolExecutor,
                    tick: Progress) -> None:
        with self.database.read() as uow:
            total = uow.integrity.blob_count()
        after: str | None = None
        tick("blobs", 0, total)
        while True:
            with self.database.read() as uow:
                page = uow.integrity.blob_page(after, PAGE)
            if not page:
                return
            after = page[-1][0]
            for row, problem in zip(page, pool.map(lambda r: self._problem(r, deep), page),
                                    strict=True):
                if problem is not None and self._row_still(row):
                    kind, detail = problem
                    report.findings.append(Finding(kind, row[0], row[2], detail))
            report.blobs += len(page)
            tick("blobs", report.blobs, total)

    def _problem(self, row: tuple[str, int, str], deep: bool) -> tuple[str, str] | None:
        digest, size, key = row
        try:
            stored = self.store.blob_size(key)
        except ValueError:
            return "missing", "the storage key is not one this store can hold"
        if stored is None:
            return "missing", f"no object at {key} ({size} bytes expected)"
        if stored != size:
            return "size", f"object is {stored} bytes, the row says {size}"
        if deep:
            actual = _hash(self.store.open_blob(key, 0, size), parse_digest(digest).algorithm)
            if actual != digest:
                return "corrupt", f"object hashes to {actual}"
        return None

    def _row_still(self, row: tuple[str, int, str]) -> bool:
        """True when the row is still there as it was (a GC did not just delete it)."""
        with self.database.read() as uow:
            return uow.integrity.blob(row[0]) == row

    def _check_references(self, report: CheckReport) -> None:
        with self.database.read() as uow:
            dangling = uow.integrity.dangling_references(10_000)
        for repository, manifest, digest in dangling:
            report.findings.append(Finding(
                "dangling", digest, None,
                f"{repository}@{manifest} references it but no blob row exists"))

    # -- storage -> rows ---------------------------------------------------------------------

    def _check_objects(self, report: CheckReport, grace: float, tick: Progress) -> None:
        with self.database.read() as uow:
            uploads = uow.integrity.live_upload_ids()
        cutoff = self.clock() - grace
        tick("objects", 0, None)
        for batch in _batches(self.store.list_blobs(), PAGE):
            report.objects += len(batch)
            settled = [o for o in batch if o.modified < cutoff and not _of_upload(o.key, uploads)]
            with self.database.read() as uow:
                known = uow.integrity.known_keys([o.key for o in settled])
            for obj in settled:
                if obj.key not in known and self._object_still(obj.key):
                    report.findings.append(Finding(
                        "orphan", None, obj.key,
                        f"{obj.size} bytes no blob row, pending deletion or upload knows"))
            tick("objects", report.objects, None)

    def _check_packs(self, report: CheckReport, grace: float) -> None:
        with self.database.read() as uow:
            page = uow.chunks.abandoned_packs(self.clock() - grace, 10_000)
            used = uow.chunks.packs_in_use([k for k, _, _ in page])
        for key, _, created in page:
            if key not in used:
                report.findings.append(Finding(
                    "pack", None, key, "a chunk pack whose chunks were never recorded "
                    f"(written {_ago(self.clock() - created)} ago; its job crashed)"))

    def _object_still(self, key: str) -> bool:
        """True when the object is still there and still unknown (no commit or GC raced)."""
        with self.database.read() as uow:
            if uow.integrity.known_keys([key]):
                return False
        try:
            return self.store.blob_size(key) is not None
        except ValueError:  # a name this store never writes: still an orphan, still there
            return True

    # -- repair ------------------------------------------------------------------------------

    def _repair(self, finding: Finding) -> None:
        if finding.kind == "pack" and finding.key is not None:
            self._repair_pack(finding, finding.key)
        elif finding.kind == "orphan" and finding.key is not None:
            try:
                self.store.delete_blob(finding.key)
            except ValueError:
                finding.detail += "; not a key this store writes: remove it by hand"
                return
            finding.repaired = "object deleted"
        elif finding.kind in ("missing", "size", "corrupt") and finding.digest is not None:
            with self.database.write() as uow:
                dropped = uow.integrity.drop_unreferenced_blob(finding.digest)
                users = [] if dropped else uow.integrity.referencing_manifests(finding.digest)
            if dropped:
                if finding.kind != "missing" and finding.key is not None:
                    self.store.delete_blob(finding.key)  # its row is gone: nothing serves it
                finding.repaired = "blob row dropped (no manifest references it); push it again"
            else:
                names = ", ".join(f"{repo}@{digest}" for repo, digest in users)
                finding.detail += f"; referenced by {names}: restore its bytes from a backup"


    def _repair_pack(self, finding: Finding, key: str) -> None:
        """Forget the intent first (a job still alive then fails its commit instead of
        recording chunks in a deleted pack), then delete the upload and the object."""
        with self.database.write() as uow:
            given_up = uow.chunks.forget_packs([key], float("inf"), queue=False)
        if not given_up:
            finding.repaired = "recorded or removed meanwhile: nothing to do"
            return
        for _, upload in given_up:
            self.store.abort_upload(upload)
        self.store.delete_blob(key)
        finding.repaired = "pack deleted"


def _ago(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{max(seconds, 0):.0f} s"


def _hash(chunks: Iterator[bytes], algorithm: str) -> str:
    hasher = new_hasher(algorithm)
    for chunk in chunks:
        hasher.update(chunk)
    return f"{algorithm}:{hasher.finalize()}"


def _of_upload(key: str, uploads: set[str]) -> bool:
    """True when `key` is the object of a live upload (S3: blobs/<id>; files: …-<id>)."""
    tail = key.rsplit("/", 1)[-1]
    return tail in uploads or any(tail.endswith("-" + u) for u in uploads)


def _batches(objects: Iterator[StoredObject], size: int) -> Iterator[list[StoredObject]]:
    batch: list[StoredObject] = []
    for obj in objects:
        batch.append(obj)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
