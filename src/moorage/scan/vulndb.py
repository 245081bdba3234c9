"""The offline vulnerability database: OSV data imported in bounded batches, its status, and
matching one installed package against it with the ecosystem's version rules."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import cvss
from .osv import (
    MalformedRecord,
    Record,
    evaluate,
    guess_ecosystem,
    lookup_ecosystems,
    lowest,
    normalise_name,
    parse_record,
)
from .sources import Problem, SourceError, iter_documents

if TYPE_CHECKING:
    from ..metadata.uow import Database

__all__ = ["EcosystemStatus", "Finding", "ImportReport", "SourceError", "VulnDatabase"]

BATCH_RECORDS = 1000
MATCH_BATCH = 500  # package names per look-up of a batched match
_RANK = {label: n for n, label in enumerate(cvss.LABELS)}
MAX_PROBLEMS_KEPT = 50  # the rest are counted, not listed


@dataclass
class Counts:
    """What one import did to the records of one ecosystem."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        """Documents counted, skipped ones included."""
        return self.added + self.updated + self.unchanged + self.skipped


@dataclass
class ImportReport:
    """Counts per base ecosystem, the documents skipped (the first few, with reasons) and the
    paths refused as a whole (a damaged zip, too many entries)."""

    ecosystems: dict[str, Counts] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    refused: list[Problem] = field(default_factory=list)

    def counts(self, ecosystem: str) -> Counts:
        """The counts of `ecosystem`, created empty on first use."""
        return self.ecosystems.setdefault(ecosystem, Counts())

    @property
    def read(self) -> int:
        """Documents read so far (skipped ones included)."""
        return sum(c.total for c in self.ecosystems.values())

    def skip(self, ecosystem: str, problem: Problem) -> None:
        """Count a skipped document and keep its reason if there is room."""
        self.counts(ecosystem).skipped += 1
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return {"ecosystems": {k: asdict(v) for k, v in sorted(self.ecosystems.items())},
                "problems": [asdict(p) for p in self.problems],
                "problem_count": self.problem_count,
                "refused": [asdict(p) for p in self.refused]}


@dataclass(frozen=True)
class EcosystemStatus:
    """What the database holds for one OSV ecosystem."""

    ecosystem: str
    records: int
    withdrawn: int
    newest_modified: float | None
    imported_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (times as Unix seconds)."""
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    """One vulnerability affecting an installed package."""

    id: str
    aliases: list[str]
    ecosystem: str
    package: str
    installed: str
    fixed: str | None
    severity: str | None  # none | low | medium | high | critical
    score: float | None  # the highest CVSS base score given
    summary: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return asdict(self)


def _severity(stored: dict[str, Any]) -> tuple[str | None, float | None]:
    scores = [c["score"] for c in stored.get("cvss", []) if c.get("score") is not None]
    if scores:
        best = max(scores)
        return cvss.label(best), best
    return stored.get("label"), None


def _as_row(record: Record) -> dict[str, Any]:
    return {
        "id": record.id, "summary": record.summary, "details": record.details,
        "aliases": record.aliases, "severity": record.severity, "modified": record.modified,
        "published": record.published, "withdrawn": record.withdrawn,
        "affected": [{"ecosystem": a.ecosystem, "name": a.name, "purl": a.purl,
                      "ranges": a.ranges, "versions": a.versions} for a in record.affected],
    }


class VulnDatabase:
    """Imports OSV data, reports what is held, matches packages against it."""

    def __init__(self, database: Database, batch_records: int = BATCH_RECORDS,
                 on_imported: Callable[[], None] | None = None) -> None:
        self.database = database
        self.batch_records = batch_records
        self.on_imported = on_imported  # e.g. queue the re-match of stored scan reports

    def import_paths(self, paths: Sequence[Path],
                     progress: Callable[[ImportReport], None] | None = None) -> ImportReport:
        """Import every OSV document under `paths` (zips, directories, JSON files), one write
        per batch: new ids are added, a newer `modified` replaces the stored record, an equal or
        older one leaves it. Malformed documents are skipped and counted; a zip that cannot be
        read is listed in `refused` and the next path follows. SourceError when a path does not
        exist (checked for every path before the first is read)."""
        report = ImportReport()
        batch: dict[str, Record] = {}
        for origin, doc in iter_documents(paths):
            if isinstance(doc, Problem):
                if doc.whole_path:
                    report.refused.append(doc)
                else:
                    report.skip("(unknown)", doc)
                continue
            for item in doc if isinstance(doc, list) else [doc]:
                try:
                    record = parse_record(item)
                except MalformedRecord as exc:
                    report.skip(guess_ecosystem(item), Problem(origin, str(exc)))
                    continue
                held = batch.get(record.id)
                if held is not None:  # the same id twice in one batch: the newer one counts
                    report.counts(held.ecosystem).unchanged += 1
                    if held.modified >= record.modified:
                        continue
                batch[record.id] = record
                if len(batch) >= self.batch_records:
                    self._write(batch, report)
                    batch = {}
                    if progress is not None:
                        progress(report)
        if batch:
            self._write(batch, report)
        touched = [e for e, c in report.ecosystems.items()
                   if c.total > c.skipped and not e.startswith("(")]
        with self.database.write() as uow:
            uow.vulns.mark_imported(touched, time.time())
        if self.on_imported is not None and any(
                c.added or c.updated for c in report.ecosystems.values()):
            self.on_imported()
        return report

    def _write(self, batch: dict[str, Record], report: ImportReport) -> None:
        now = time.time()
        counted: list[tuple[str, str]] = []
        with self.database.write() as uow:
            stored = uow.vulns.modified_of(list(batch))
            new = [r for r in batch.values() if r.id not in stored]
            newer = [r for r in batch.values() if r.id in stored and r.modified > stored[r.id]]
            uow.vulns.insert([_as_row(r) for r in new], now)
            uow.vulns.replace([_as_row(r) for r in newer], now)
        changed = {r.id for r in newer}
        for r in batch.values():
            kind = "added" if r.id not in stored else "updated" if r.id in changed else "unchanged"
            counted.append((r.ecosystem, kind))
        for ecosystem, kind in counted:
            counts = report.counts(ecosystem)
            setattr(counts, kind, getattr(counts, kind) + 1)

    def status(self) -> list[EcosystemStatus]:
        """Per OSV ecosystem: records held (and withdrawn), newest `modified`, when its data
        was last imported."""
        with self.database.read() as uow:
            rows = uow.vulns.status()
            imported = uow.vulns.imported_at()
        return [EcosystemStatus(r["ecosystem"], r["records"], r["withdrawn"], r["newest"],
                                imported.get(r["ecosystem"].split(":", 1)[0]))
                for r in rows]

    def data_version(self) -> float | None:
        """The newest import time of the data held (what a match is against), None if none."""
        with self.database.read() as uow:
            return uow.vulns.data_version()

    def match_many(self, queries: Sequence[tuple[str, str, str]],
                   batch: int = MATCH_BATCH) -> list[list[Finding]]:
        """`match` for many (ecosystem, name, version) at once: one look-up per ecosystem and
        `batch` names, not one per package. The findings of each query, in its order."""
        by_eco: dict[str, list[int]] = {}
        for i, (ecosystem, _name, _version) in enumerate(queries):
            by_eco.setdefault(ecosystem, []).append(i)
        out: list[list[Finding]] = [[] for _ in queries]
        with self.database.read() as uow:
            for ecosystem, indexes in by_eco.items():
                names = sorted({normalise_name(ecosystem, queries[i][1]) for i in indexes})
                rows: dict[str, list[dict[str, Any]]] = {}
                for start in range(0, len(names), batch):
                    for row in uow.vulns.affecting_names(lookup_ecosystems(ecosystem),
                                                         names[start:start + batch]):
                        rows.setdefault(row["name"], []).append(row)
                # Images share packages: each distinct (name, version) is evaluated once.
                done: dict[tuple[str, str], list[Finding]] = {}
                for i in indexes:
                    _eco, name, version = queries[i]
                    found = done.get((name, version))
                    if found is None:
                        found = done[(name, version)] = self._findings(
                            rows.get(normalise_name(ecosystem, name), []), ecosystem, name,
                            version)
                    out[i] = list(found)
        return out

    def match(self, ecosystem: str, name: str, version: str) -> list[Finding]:
        """The vulnerabilities affecting `name` at `version` in `ecosystem` (`Debian:12` also
        uses records of plain `Debian`); distribution packages go by their source name.
        Highest score first."""
        with self.database.read() as uow:
            rows = uow.vulns.affecting(lookup_ecosystems(ecosystem),
                                       normalise_name(ecosystem, name))
        return self._findings(rows, ecosystem, name, version)

    @staticmethod
    def _findings(rows: list[dict[str, Any]], ecosystem: str, name: str, version: str
                  ) -> list[Finding]:
        hits: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for row in rows:
            affected, fixes = evaluate(row["ranges"], row["versions"], version, ecosystem)
            if affected:
                hits.setdefault(row["id"], (row, []))[1].extend(fixes)
        findings = []
        for row, fixes in hits.values():
            severity, score = _severity(row["severity"])
            findings.append(Finding(row["id"], row["aliases"], ecosystem, name, version,
                                    lowest(fixes, ecosystem), severity, score, row["summary"]))
        findings.sort(key=lambda f: (-_RANK.get(f.severity or "", -1), -(f.score or 0), f.id))
        return findings
