"""Scan reports: one row per (repository, manifest digest), written pending when its scan is
queued and replaced whole when the scan ends; vulnerabilities re-matched in id order."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, select, update

from ..base import column_text
from ..schema import scan_reports as r

if TYPE_CHECKING:
    from ..uow import UnitOfWork

JSON_FIELDS = ("packages", "vulnerabilities", "secrets", "model_findings")
EMPTY = {k: "[]" for k in JSON_FIELDS}
CHUNK = 500  # ids per IN (...) list


class ScanQueries:
    """The `scan_reports` table within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn
        self._insert = uow.store._insert

    def add_pending(self, repository: str, digest: str, now: float) -> bool:
        """A pending report unless the manifest has one (of any status); True if added."""
        result = self.conn.execute(
            self._insert(r).values(repository=repository, digest=digest, status="pending",
                                   queued_at=now, **EMPTY)
            .on_conflict_do_nothing(index_elements=["repository", "digest"]))
        return bool(result.rowcount == 1)

    def reset_pending(self, repository: str, digest: str, now: float) -> None:
        """The manifest's report back to pending with no findings (a rescan was queued)."""
        values = {"status": "pending", "reason": None, "error": None, "queued_at": now,
                  "scanned_at": None, "matched_at": None, "vulndb_version": None, "os": None,
                  **EMPTY}
        stmt = self._insert(r).values(repository=repository, digest=digest, **values)
        self.conn.execute(stmt.on_conflict_do_update(
            index_elements=["repository", "digest"], set_=values))

    def save(self, repository: str, digest: str, report: Mapping[str, Any], now: float) -> None:
        """Replace the manifest's report: status, reason, error, scanned_at, matched_at,
        vulndb_version, os (a dict or None) and the four finding lists."""
        values: dict[str, Any] = {
            "status": report["status"], "reason": column_text(report.get("reason"), 2000),
            "error": column_text(report.get("error"), 2000),
            "scanned_at": report.get("scanned_at"), "matched_at": report.get("matched_at"),
            "vulndb_version": report.get("vulndb_version"),
            "os": json.dumps(report["os"]) if report.get("os") else None,
            **{k: json.dumps(report.get(k) or []) for k in JSON_FIELDS},
        }
        stmt = self._insert(r).values(repository=repository, digest=digest, queued_at=now,
                                      **values)
        self.conn.execute(stmt.on_conflict_do_update(
            index_elements=["repository", "digest"], set_=values))

    def delete(self, repository: str, digest: str) -> None:
        """Remove the manifest's report (it is not scanned after all)."""
        self.conn.execute(delete(r).where(r.c.repository == repository, r.c.digest == digest))

    def get(self, repository: str, digest: str) -> dict[str, Any] | None:
        """The manifest's report (JSON columns decoded), None when it has none."""
        row = self.conn.execute(
            select(r).where(r.c.repository == repository, r.c.digest == digest)).first()
        return _decode(dict(row._mapping)) if row else None

    def done_after(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` done reports with an id above `after_id`, in id order: id, repository,
        digest, packages and vulnerabilities (what a re-match needs)."""
        rows = self.conn.execute(
            select(r.c.id, r.c.repository, r.c.digest, r.c.packages, r.c.vulnerabilities)
            .where(r.c.status == "done", r.c.id > after_id).order_by(r.c.id).limit(limit))
        return [{"id": row.id, "repository": row.repository, "digest": row.digest,
                 "packages": json.loads(row.packages),
                 "vulnerabilities": json.loads(row.vulnerabilities)} for row in rows]

    def set_vulnerabilities_many(self, updates: Sequence[tuple[int, list[dict[str, Any]]]],
                                 vulndb_version: float | None, now: float) -> set[int]:
        """`set_vulnerabilities` for many reports in one statement; the ids written (those
        still done)."""
        ids = [report_id for report_id, _ in updates]
        done: set[int] = set()
        for start in range(0, len(ids), CHUNK):
            done.update(self.conn.execute(select(r.c.id).where(
                r.c.id.in_(ids[start:start + CHUNK]), r.c.status == "done")).scalars())
        rows = [{"b_id": report_id, "b_vulns": json.dumps(vulns)}
                for report_id, vulns in updates if report_id in done]
        if rows:
            self.conn.execute(
                update(r).where(r.c.id == bindparam("b_id"), r.c.status == "done")
                .values(vulnerabilities=bindparam("b_vulns"), vulndb_version=vulndb_version,
                        matched_at=now), rows)
        return done


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    out = row
    for key in JSON_FIELDS:
        out[key] = json.loads(out[key])
    out["os"] = json.loads(out["os"]) if out.get("os") else None
    return out
