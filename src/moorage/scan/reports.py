"""Scan reports: one per manifest, with an honest status, written with its events.

`pending` from the moment a scan is queued, then `done` (packages, vulnerabilities, secrets,
model findings), `unsupported` (with the reason) or `failed` (with the error). Vulnerabilities
are matched from the stored packages, so new vulnerability data re-matches every report without
reading a layer again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..events.types import ScanCompleted, SecretFound, VulnerabilityFound, records
from ..metrics.supply import count_scan
from ..oci.errors import ManifestUnknown, RegistryError
from .service import split_reference

if TYPE_CHECKING:
    from ..metadata.uow import Database, UnitOfWork
    from .catalog import OsInfo, Package
    from .vulndb import Finding, VulnDatabase

STATUSES = ("pending", "done", "unsupported", "failed")
KEYS = ("status", "reason", "error", "scanned_at", "packages", "vulnerabilities", "secrets",
        "model_findings")
REMATCH_BATCH = 200  # reports per read and write of a re-match
# Language package types → their OSV ecosystem (distribution packages use the os-release one).
ECOSYSTEMS = {"pypi": "PyPI", "npm": "npm", "golang": "Go", "maven": "Maven",
              "cargo": "crates.io", "gem": "RubyGems", "nuget": "NuGet"}
DISTRO_TYPES = ("deb", "apk", "rpm")
MAX_EVENT_PATHS = 20


def package_rows(packages: Iterable[Package], os_info: OsInfo | None) -> list[dict[str, str]]:
    """The report's package list: each with the OSV ecosystem it is matched in ("" if none)."""
    rows = []
    for p in packages:
        if p.type in DISTRO_TYPES:
            ecosystem = (os_info.ecosystem or "") if os_info else ""
        else:
            ecosystem = ECOSYSTEMS.get(p.type, "")
        rows.append({"name": p.name, "version": p.version, "purl": p.purl, "type": p.type,
                     "layer": p.layer, "path": p.path, "source_name": p.source_name,
                     "source_version": p.source_version, "ecosystem": ecosystem})
    return rows


def _query(pkg: dict[str, Any]) -> tuple[str, str, str] | None:
    """(ecosystem, name, version) a package is matched as: distribution packages by their
    source package (dpkg `Source:`, apk origin), Go modules without the `v`."""
    ecosystem = str(pkg.get("ecosystem") or "")
    if not ecosystem:
        return None
    name, version = str(pkg.get("name", "")), str(pkg.get("version", ""))
    if pkg.get("type") in ("deb", "apk"):
        name = str(pkg.get("source_name") or name)
        version = str(pkg.get("source_version") or version)
    elif pkg.get("type") == "golang" and version.startswith("v"):
        version = version[1:]
    return (ecosystem, name, version) if name and version else None


def _vulnerability(pkg: dict[str, Any], f: Finding) -> dict[str, Any]:
    return {"id": f.id, "aliases": f.aliases, "package": pkg.get("name", ""),
            "installed": pkg.get("version", ""), "fixed": f.fixed, "severity": f.severity,
            "score": f.score, "layer": pkg.get("layer", ""), "purl": pkg.get("purl", ""),
            "source": f.package if f.package != pkg.get("name") else None,
            "ecosystem": f.ecosystem, "summary": f.summary}


def severity_counts(vulnerabilities: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many findings of each severity (`unknown` when a record gives none)."""
    return dict(sorted(Counter(v.get("severity") or "unknown" for v in vulnerabilities).items()))


def _key(v: dict[str, Any]) -> tuple[str, str, str]:
    return (str(v.get("id")), str(v.get("package")), str(v.get("installed")))


class ScanReports:
    """Writes and reads scan reports; matches their packages against the vulnerability data."""

    def __init__(self, database: Database, vulndb: VulnDatabase, on_push: bool = True,
                 queue_scan: Callable[[str, str, str], None] | None = None) -> None:
        self.database = database
        self.vulndb = vulndb
        self.on_push = on_push
        self.queue_scan = queue_scan  # (repository, digest, media type): queue the scan job

    def rescan(self, ref: str) -> tuple[str, str]:
        """Queue the scan of `REPO:TAG` / `REPO@DIGEST` again; its report is pending until the
        job has run. (repository, digest)."""
        repository, digest, tag = split_reference(ref)
        with self.database.read() as uow:
            row = uow.manifests.get(repository, digest, tag, False)
        if row is None:
            raise ManifestUnknown(f"no manifest {ref}", detail={"reference": ref})
        if self.queue_scan is None:
            raise RegistryError("scanning is off here (sbom_on_push = false): no scan job runs")
        self.requeued(repository, row.digest)
        self.queue_scan(repository, row.digest, row.media_type)
        return repository, str(row.digest)

    # -- writing ------------------------------------------------------------------------------

    def queued(self, repository: str, digest: str) -> bool:
        """A pending report for a manifest whose scan is being queued (unless it has one)."""
        with self.database.write() as uow:
            return uow.scans.add_pending(repository, digest, time.time())

    def requeued(self, repository: str, digest: str) -> None:
        """The manifest's report back to pending: it is scanned again."""
        with self.database.write() as uow:
            uow.scans.reset_pending(repository, digest, time.time())

    def forget(self, repository: str, digest: str) -> None:
        """Remove the manifest's report (content that is never scanned, e.g. an SBOM)."""
        with self.database.write() as uow:
            uow.scans.delete(repository, digest)

    def match(self, packages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The vulnerabilities of a report's packages (one batched look-up), highest first."""
        return self.match_reports([packages])[0]

    def match_reports(self, reports: Sequence[Sequence[dict[str, Any]]]
                      ) -> list[list[dict[str, Any]]]:
        """`match` for the package lists of several reports in one batched look-up."""
        queries = [((r, i), q) for r, packages in enumerate(reports)
                   for i, p in enumerate(packages) if (q := _query(p)) is not None]
        found = self.vulndb.match_many([q for _, q in queries]) if queries else []
        out: list[list[dict[str, Any]]] = [[] for _ in reports]
        for ((r, i), _), findings in zip(queries, found, strict=True):
            out[r] += [_vulnerability(reports[r][i], f) for f in findings]
        for vulns in out:
            vulns.sort(key=lambda v: (-(v["score"] or 0), v["id"], v["package"]))
        return out

    def record(self, repository: str, digest: str, status: str, *, reason: str | None = None,
               error: str | None = None, os: dict[str, Any] | None = None,
               packages: Sequence[dict[str, Any]] = (), secrets: Sequence[dict[str, Any]] = (),
               model_findings: Sequence[dict[str, Any]] = (), kind: str = "image"
               ) -> dict[str, Any]:
        """Write the manifest's report (vulnerabilities matched now for a done one) and its
        events (ScanCompleted; VulnerabilityFound and SecretFound when there are any); `kind`
        (image, model, index, other) labels the scan in /metrics."""
        if status not in STATUSES:
            raise ValueError(f"unknown scan status {status}")
        now = time.time()
        version = self.vulndb.data_version()
        vulns = self.match(packages) if status == "done" else []
        report: dict[str, Any] = {
            "status": status, "reason": reason, "error": error, "scanned_at": now,
            "matched_at": now if status == "done" else None,
            "vulndb_version": version if status == "done" else None, "os": os,
            "packages": list(packages), "vulnerabilities": vulns, "secrets": list(secrets),
            "model_findings": list(model_findings)}
        counts = {k: len(report[k]) for k in KEYS[4:]}
        events: list[Any] = [ScanCompleted(repository=repository, digest=digest, status=status,
                                           reason=reason or error, counts=counts)]
        if vulns:
            events.append(VulnerabilityFound(repository=repository, digest=digest,
                                             total=len(vulns), by_severity=severity_counts(vulns)))
        if secrets:
            events.append(SecretFound(
                repository=repository, digest=digest, total=len(secrets),
                rules=sorted({str(s["rule"]) for s in secrets}),
                paths=sorted({str(s["path"]) for s in secrets})[:MAX_EVENT_PATHS]))
        with self.database.write() as uow:
            if uow.manifests.get(repository, digest, None, False) is None:
                return report  # deleted while it was scanned: its report went with it
            uow.scans.save(repository, digest, report, now)
            uow.emit(records(*events))
        count_scan(kind, status)
        return report

    def rematch(self, batch: int = REMATCH_BATCH) -> dict[str, int]:
        """Re-match every done report's stored packages against the data held now (no layer
        is read), `batch` reports at a time; a report whose findings changed is rewritten,
        with a VulnerabilityFound event when it has new ones."""
        after, seen, changed = 0, 0, 0
        while True:
            with self.database.read() as uow:
                rows = uow.scans.done_after(after, batch)
            if not rows:
                break
            after = rows[-1]["id"]
            seen += len(rows)
            version = self.vulndb.data_version()
            updates = []
            matched = self.match_reports([row["packages"] for row in rows])
            for row, vulns in zip(rows, matched, strict=True):
                if {_key(v) for v in vulns} != {_key(v) for v in row["vulnerabilities"]}:
                    updates.append((row, vulns))
            if updates:
                now = time.time()
                with self.database.write() as uow:
                    changed += self._rewrite(uow, updates, version, now)
        return {"reports": seen, "changed": changed}

    @staticmethod
    def _rewrite(uow: UnitOfWork, updates: list[tuple[dict[str, Any], list[dict[str, Any]]]],
                 version: float | None, now: float) -> int:
        written = 0
        stored = uow.scans.set_vulnerabilities_many([(row["id"], vulns) for row, vulns in updates],
                                                    version, now)
        for row, vulns in updates:
            if row["id"] not in stored:
                continue  # rescanned meanwhile: the new scan matches for itself
            written += 1
            old = {_key(v) for v in row["vulnerabilities"]}
            if any(_key(v) not in old for v in vulns):
                uow.emit(records(VulnerabilityFound(
                    repository=row["repository"], digest=row["digest"], total=len(vulns),
                    by_severity=severity_counts(vulns), rematch=True)))
        return written

    # -- reading ------------------------------------------------------------------------------

    def resolve(self, ref: str) -> tuple[str, str]:
        """(repository, digest) of `REPO:TAG` or `REPO@DIGEST`; MANIFEST_UNKNOWN if none."""
        repository, digest, tag = split_reference(ref)
        return self.resolve_parts(repository, digest, tag, ref)

    def resolve_parts(self, repository: str, digest: str | None, tag: str | None,
                      ref: str) -> tuple[str, str]:
        """(repository, digest) of a manifest named by digest or tag."""
        with self.database.read() as uow:
            row = uow.manifests.get(repository, digest, tag, False)
        if row is None:
            raise ManifestUnknown(f"no manifest {ref}", detail={"reference": ref})
        return repository, str(row.digest)

    def show(self, repository: str, digest: str) -> dict[str, Any]:
        """The report of a stored manifest, exactly the keys of KEYS (a manifest without one
        is pending: never an empty, clean-looking report; an SBOM referrer says whose it is)."""
        self.resolve_parts(repository, digest, None, f"{repository}@{digest}")
        with self.database.read() as uow:
            row = uow.scans.get(repository, digest)
            manifest = uow.manifests.get(repository, digest, None, True) \
                if row is None or row["status"] == "pending" else None
        sbom = _sbom_reason(repository, manifest.content) if manifest is not None else None
        if sbom is not None:
            return {"status": "unsupported", "reason": sbom, "error": None, "scanned_at": None,
                    "packages": [], "vulnerabilities": [], "secrets": [],
                    "model_findings": []}
        if row is None:
            reason = ("not scanned yet" if self.on_push
                      else "not scanned: scanning on push is off (run 'moorage scan run')")
            return {"status": "pending", "reason": reason, "error": None, "scanned_at": None,
                    "packages": [], "vulnerabilities": [], "secrets": [],
                    "model_findings": []}
        return {k: row[k] for k in KEYS}


def _sbom_reason(repository: str, content: str | bytes | None) -> str | None:
    """Why an SBOM referrer has no report of its own, and where the image's is; None for other
    manifests."""
    import json

    from .processor import sbom_subject

    try:
        doc = json.loads(content or b"{}")
    except ValueError:
        return None
    subject = sbom_subject(doc) if isinstance(doc, dict) else None
    if subject is None:
        return None
    image = f"{repository}@{subject}"
    return (f"not scanned: it is an SBOM ({doc.get('artifactType')}) of {image}; its scan "
            f"report: `moorage scan show {image}`, its packages: `moorage sbom show {image}`")
