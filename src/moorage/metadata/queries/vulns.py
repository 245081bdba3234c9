"""Vulnerability records (OSV): batch upserts by id, per-ecosystem status, package look-ups."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, distinct, func, select, update

from ..base import column_text, per_dialect
from ..schema import vuln_affected, vuln_imports, vuln_records, vuln_sources

if TYPE_CHECKING:
    from ..uow import UnitOfWork


class VulnQueries:
    """The vulnerability tables within one unit of work.

    A record is a mapping with id, summary, details, aliases (list), severity (dict), modified,
    published, withdrawn and affected: [{ecosystem, name, purl, ranges, versions}].
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def modified_of(self, ids: Sequence[str]) -> dict[str, float]:
        """The stored `modified` time of each of `ids` that exists."""
        if not ids:
            return {}
        rows = self.conn.execute(_MODIFIED_OF, {"ids": list(ids)})
        return {r.id: r.modified for r in rows}

    def insert(self, records: Sequence[Mapping[str, Any]], now: float) -> None:
        """Add new records and their affected packages."""
        if records:
            self.conn.execute(_INSERT[self.uow.dialect], [_record_row(r, now) for r in records])
            self._add_affected(records)

    def replace(self, records: Sequence[Mapping[str, Any]], now: float) -> None:
        """Overwrite existing records (by id) and their affected packages."""
        if not records:
            return
        rows = [{"rid": r["id"], **{f"v_{k}": v for k, v in _record_row(r, now).items()
                                    if k != "id"}} for r in records]
        self.conn.execute(_UPDATE, rows)
        self.conn.execute(delete(vuln_affected).where(
            vuln_affected.c.record_id.in_([r["id"] for r in records])))
        self._add_affected(records)

    def _add_affected(self, records: Iterable[Mapping[str, Any]]) -> None:
        rows = [
            {"record_id": r["id"], "ecosystem": a["ecosystem"],
             "name": column_text(a["name"], 400), "purl": column_text(a["purl"], 1000),
             "ranges": json.dumps(a["ranges"]), "versions": json.dumps(a["versions"])}
            for r in records for a in r["affected"]
        ]
        if rows:
            self.conn.execute(vuln_affected.insert(), rows)

    def mark_imported(self, ecosystems: Iterable[str], now: float) -> None:
        """Record that data of these base ecosystems was imported at `now`."""
        rows = [{"ecosystem": e, "imported_at": now} for e in sorted(set(ecosystems))]
        if rows:
            self.conn.execute(_MARK[self.uow.dialect], rows)

    def source_digest(self, source: str) -> str | None:
        """The digest last imported from an OSV artifact `source` (REPO:TAG), if any."""
        return self.conn.execute(select(vuln_sources.c.digest)
                                 .where(vuln_sources.c.source == source)).scalar_one_or_none()

    def mark_source(self, source: str, digest: str, now: float) -> None:
        """Record that artifact `source` was imported at `digest`."""
        self.conn.execute(delete(vuln_sources).where(vuln_sources.c.source == source))
        self.conn.execute(vuln_sources.insert().values(source=source, digest=digest,
                                                       imported_at=now))

    def status(self) -> list[dict[str, Any]]:
        """Per ecosystem: records (not withdrawn), withdrawn, newest `modified`."""
        a, r = vuln_affected.c, vuln_records.c
        query = (
            select(a.ecosystem,
                   func.count(distinct(a.record_id)).filter(r.withdrawn.is_(None))
                   .label("records"),
                   func.count(distinct(a.record_id)).filter(r.withdrawn.is_not(None))
                   .label("withdrawn"),
                   func.max(r.modified).label("newest"))
            .select_from(vuln_affected.join(vuln_records, r.id == a.record_id))
            .group_by(a.ecosystem).order_by(a.ecosystem)
        )
        return [dict(row._mapping) for row in self.conn.execute(query)]

    def imported_at(self) -> dict[str, float]:
        """When each base ecosystem was last imported."""
        return {r.ecosystem: r.imported_at for r in self.conn.execute(select(vuln_imports))}

    def affecting(self, ecosystems: Sequence[str], name: str) -> list[dict[str, Any]]:
        """The affected entries (with their record's fields) of a package, withdrawn records
        left out."""
        rows = self.conn.execute(_AFFECTING, {"ecosystems": list(ecosystems), "name": name})
        return [
            {"id": row.id, "ecosystem": row.ecosystem, "summary": row.summary,
             "aliases": json.loads(row.aliases), "severity": json.loads(row.severity),
             "ranges": json.loads(row.ranges), "versions": json.loads(row.versions)}
            for row in rows
        ]


    def affecting_names(self, ecosystems: Sequence[str], names: Sequence[str]
                        ) -> list[dict[str, Any]]:
        """`affecting` for many package names at once (each row also has its `name`)."""
        if not names:
            return []
        rows = self.conn.execute(_AFFECTING_NAMES, {"ecosystems": list(ecosystems),
                                                    "names": list(names)})
        return [
            {"id": row.id, "ecosystem": row.ecosystem, "name": row.name, "summary": row.summary,
             "aliases": json.loads(row.aliases), "severity": json.loads(row.severity),
             "ranges": json.loads(row.ranges), "versions": json.loads(row.versions)}
            for row in rows
        ]

    def data_version(self) -> float | None:
        """When vulnerability data was last imported (any ecosystem), None if never."""
        value = self.conn.execute(select(func.max(vuln_imports.c.imported_at))).scalar()
        return float(value) if value is not None else None


def _record_row(r: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {
        "id": r["id"], "summary": column_text(r["summary"], 500),
        "details": column_text(r["details"], 4000), "aliases": json.dumps(r["aliases"]),
        "severity": json.dumps(r["severity"]), "modified": r["modified"],
        "published": r["published"], "withdrawn": r["withdrawn"], "imported_at": now,
    }


_MODIFIED_OF = select(vuln_records.c.id, vuln_records.c.modified).where(
    vuln_records.c.id.in_(bindparam("ids", expanding=True)))
# A concurrent import may have added the same id first: its row stands, ours is not an error.
_INSERT = per_dialect(lambda insert: insert(vuln_records).on_conflict_do_nothing(
    index_elements=["id"]))
_UPDATE = (
    update(vuln_records).where(vuln_records.c.id == bindparam("rid"))
    .values({c: bindparam(f"v_{c}") for c in ("summary", "details", "aliases", "severity", "modified",
                                       "published", "withdrawn", "imported_at")})
)


def _mark(insert: Any) -> Any:
    stmt = insert(vuln_imports)
    return stmt.on_conflict_do_update(index_elements=["ecosystem"],
                                      set_={"imported_at": stmt.excluded.imported_at})


_MARK = per_dialect(_mark)
_AFFECTING = (
    select(vuln_records.c.id, vuln_records.c.summary, vuln_records.c.aliases,
           vuln_records.c.severity, vuln_affected.c.ecosystem, vuln_affected.c.ranges,
           vuln_affected.c.versions)
    .select_from(vuln_affected.join(vuln_records, vuln_records.c.id == vuln_affected.c.record_id))
    .where(vuln_affected.c.ecosystem.in_(bindparam("ecosystems", expanding=True)),
           vuln_affected.c.name == bindparam("name"), vuln_records.c.withdrawn.is_(None))
    .order_by(vuln_records.c.id)
)
_AFFECTING_NAMES = (
    select(vuln_records.c.id, vuln_records.c.summary, vuln_records.c.aliases,
           vuln_records.c.severity, vuln_affected.c.ecosystem, vuln_affected.c.name,
           vuln_affected.c.ranges, vuln_affected.c.versions)
    .select_from(vuln_affected.join(vuln_records, vuln_records.c.id == vuln_affected.c.record_id))
    .where(vuln_affected.c.ecosystem.in_(bindparam("ecosystems", expanding=True)),
           vuln_affected.c.name.in_(bindparam("names", expanding=True)),
           vuln_records.c.withdrawn.is_(None))
    .order_by(vuln_records.c.id)
)
