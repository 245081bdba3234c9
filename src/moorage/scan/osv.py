"""OSV records: their shape checked and trimmed to what matching needs, and OSV's range
evaluation (ECOSYSTEM and SEMVER ranges; GIT ranges need the repository and are ignored)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cmp_to_key
from typing import Any

from ..times import parse_time
from . import cvss
from .versions import COMPARATORS, InvalidVersion, compare_semver, family_of

MAX_ID = 200
MAX_SUMMARY = 500
MAX_DETAILS = 4000  # the full text stays at the source; a report needs its start
MAX_NAME = 400
EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
# Package names compared as written; every other ecosystem is case-insensitive.
CASE_SENSITIVE = frozenset({"Go", "Maven", "RubyGems"})
_PEP503 = re.compile(r"[-_.]+")


class MalformedRecord(ValueError):
    """A JSON document that is not an OSV record this importer can use."""


@dataclass(frozen=True)
class Affected:
    """One affected package of a record: its ecosystem, normalised name and versions."""

    ecosystem: str
    name: str
    purl: str | None
    ranges: list[dict[str, Any]]  # [{"type": "ECOSYSTEM"|"SEMVER", "events": [{kind: v}]}]
    versions: list[str]


@dataclass(frozen=True)
class Record:
    """An OSV record as stored: what a finding reports and the affected packages."""

    id: str
    modified: float
    published: float | None
    withdrawn: float | None
    summary: str
    details: str
    aliases: list[str]
    severity: dict[str, Any]  # {"cvss": [{"type", "vector", "score"}], "label": str | None}
    affected: list[Affected] = field(default_factory=list)

    @property
    def ecosystem(self) -> str:
        """The base ecosystem the record is counted under on import (`Debian` for
        `Debian:12`)."""
        return self.affected[0].ecosystem.split(":", 1)[0] if self.affected else "(none)"


def normalise_name(ecosystem: str, name: str) -> str:
    """A package name as stored and looked up: PEP 503 for PyPI, lower case elsewhere except
    for the case-sensitive ecosystems (Go module paths, Maven coordinates, gems)."""
    base = ecosystem.split(":", 1)[0]
    name = name.strip()
    if base == "PyPI":
        return _PEP503.sub("-", name).lower()
    return name if base in CASE_SENSITIVE else name.lower()


def lookup_ecosystems(ecosystem: str) -> list[str]:
    """The ecosystems whose records apply to a package of `ecosystem`: itself and, for a
    release such as `Debian:12`, the plain `Debian`."""
    base = ecosystem.split(":", 1)[0]
    return [ecosystem] if base == ecosystem else [ecosystem, base]


def guess_ecosystem(doc: Any) -> str:
    """The base ecosystem a malformed document seems to be about, for the skip counts."""
    try:
        eco = doc["affected"][0]["package"]["ecosystem"]
        return eco.split(":", 1)[0] if isinstance(eco, str) and eco else "(unknown)"
    except (KeyError, IndexError, TypeError):
        return "(unknown)"


# -- shape --------------------------------------------------------------------------------------


def _str(doc: dict[str, Any], key: str, required: bool = False, limit: int = 0) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise MalformedRecord(f"no {key!r}")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise MalformedRecord(f"{key!r} is not a string")
    return value[:limit] if limit else value


def _time(doc: dict[str, Any], key: str, required: bool = False) -> float | None:
    raw = _str(doc, key, required)
    if raw is None:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise MalformedRecord(f"{key!r} is not an RFC 3339 time: {raw[:40]!r}") from None


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedRecord(f"{what} is not a list")
    return value


def _strings(value: Any, what: str) -> list[str]:
    items = _list(value, what)
    if not all(isinstance(v, str) for v in items):
        raise MalformedRecord(f"{what} holds a non-string")
    return items


def _dict(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedRecord(f"{what} is not an object")
    return value


def _ranges(value: Any, where: str) -> list[dict[str, Any]]:
    kept = []
    for r in _list(value, f"{where}.ranges"):
        r = _dict(r, f"{where}.ranges[]")
        kind = r.get("type")
        if not isinstance(kind, str) or not kind:
            raise MalformedRecord(f"{where}: a range needs a type")
        events = []
        for e in _list(r.get("events"), f"{where}.ranges[].events"):
            e = _dict(e, f"{where}.ranges[].events[]")
            pairs = [(k, e[k]) for k in EVENT_KINDS if k in e]
            if len(pairs) != 1 or not isinstance(pairs[0][1], str) or not pairs[0][1]:
                raise MalformedRecord(f"{where}: an event needs one of {', '.join(EVENT_KINDS)}")
            events.append({pairs[0][0]: pairs[0][1]})
        if not events:
            raise MalformedRecord(f"{where}: a range without events")
        # GIT ranges name commits, which installed versions cannot be compared with; a type
        # this importer does not know is kept out of matching the same way.
        if kind in ("ECOSYSTEM", "SEMVER"):
            kept.append({"type": kind, "events": events})
    return kept


def _severity(doc: dict[str, Any], affected: list[dict[str, Any]]) -> dict[str, Any]:
    scored: list[dict[str, Any]] = []
    words: list[str] = []
    entries = list(_list(doc.get("severity"), "severity"))
    for a in affected:
        entries.extend(_list(a.get("severity"), "affected[].severity"))
    for s in entries:
        s = _dict(s, "severity[]")
        kind, score = s.get("type"), s.get("score")
        if not isinstance(kind, str) or not isinstance(score, str):
            raise MalformedRecord("a severity needs a type and a score")
        if kind.startswith("CVSS"):
            scored.append({"type": kind, "vector": score[:200],
                           "score": cvss.base_score(kind, score)})
        else:  # e.g. Ubuntu's priority word
            words.append(score)
    for where in (doc, *affected):
        for key in ("database_specific", "ecosystem_specific"):
            value = _dict(where.get(key), key).get("severity")
            if isinstance(value, str):
                words.append(value)
    label = next((w for w in map(cvss.normalise_label, words) if w), None)
    return {"cvss": scored, "label": label}


def parse_record(doc: Any) -> Record:
    """The Record of an OSV JSON document; MalformedRecord (with the reason) otherwise."""
    if not isinstance(doc, dict):
        raise MalformedRecord("not a JSON object")
    record_id = _str(doc, "id", required=True)
    assert record_id is not None
    if len(record_id) > MAX_ID:
        raise MalformedRecord("'id' is too long")
    modified = _time(doc, "modified", required=True)
    assert modified is not None
    _dict(doc.get("database_specific"), "database_specific")
    affected_docs = [_dict(a, "affected[]") for a in _list(doc.get("affected"), "affected")]
    affected = []
    for n, a in enumerate(affected_docs):
        where = f"affected[{n}]"
        package = _dict(a.get("package"), f"{where}.package")
        ranges = _ranges(a.get("ranges"), where)
        versions = _strings(a.get("versions"), f"{where}.versions")
        _dict(a.get("database_specific"), f"{where}.database_specific")
        _dict(a.get("ecosystem_specific"), f"{where}.ecosystem_specific")
        if not package:  # an affected repository (GIT ranges only): nothing to match here
            continue
        ecosystem = _str(package, "ecosystem", required=True)
        name = _str(package, "name", required=True)
        purl = _str(package, "purl", limit=MAX_NAME)
        assert ecosystem is not None and name is not None
        if len(name) > MAX_NAME or len(ecosystem) > 100:
            raise MalformedRecord(f"{where}: package name or ecosystem too long")
        affected.append(Affected(ecosystem.strip(), normalise_name(ecosystem, name), purl,
                                 ranges, versions))
    return Record(
        id=record_id.strip(),
        modified=modified,
        published=_time(doc, "published"),
        withdrawn=_time(doc, "withdrawn"),
        summary=(_str(doc, "summary") or "")[:MAX_SUMMARY],
        details=(_str(doc, "details") or "")[:MAX_DETAILS],
        aliases=_strings(doc.get("aliases"), "aliases"),
        severity=_severity(doc, affected_docs),
        affected=affected,
    )


# -- evaluation ---------------------------------------------------------------------------------


def _event_version(event: dict[str, str]) -> str:
    return next(iter(event.values()))


def _in_range(events: list[dict[str, str]], installed: str,
              cmp: Callable[[str, str], int]) -> tuple[bool, list[str]]:
    """(is `installed` inside, the `fixed` versions above it) for one range's events."""

    def order(a: dict[str, str], b: dict[str, str]) -> int:
        va, vb = _event_version(a), _event_version(b)
        if va == vb:
            return 0
        if "introduced" in a and va == "0":
            return -1
        if "introduced" in b and vb == "0":
            return 1
        return cmp(va, vb)

    inside = False
    for event in sorted(events, key=cmp_to_key(order)):
        kind, version = next(iter(event.items()))
        # Events are in version order: the last one at or below `installed` decides.
        if kind == "introduced" and (version == "0" or cmp(installed, version) >= 0):
            inside = True
        elif kind in ("fixed", "last_affected"):
            # fixed: `installed` at or above it is not affected; last_affected: only above it
            at_or_above = cmp(installed, version)
            if at_or_above > 0 or (at_or_above == 0 and kind == "fixed"):
                inside = False
    for event in events:
        limit = event.get("limit")
        if limit and limit != "*" and cmp(installed, limit) >= 0:
            inside = False
    fixes = [e["fixed"] for e in events if "fixed" in e and cmp(e["fixed"], installed) > 0]
    return inside, fixes


def evaluate(ranges: Iterable[dict[str, Any]], versions: Iterable[str], installed: str,
             ecosystem: str) -> tuple[bool, list[str]]:
    """(is `installed` affected, the `fixed` versions above it) for one affected entry: in its
    explicit `versions` or inside any of its ranges. A range whose versions the ecosystem
    cannot order is skipped."""
    family = family_of(ecosystem)
    cmp = COMPARATORS[family] if family else None
    hit = False
    for v in versions:
        if v == installed:
            hit = True
            break
        if cmp is not None:
            try:
                if cmp(v, installed) == 0:
                    hit = True
                    break
            except InvalidVersion:
                continue
    fixes: list[str] = []
    for r in ranges:
        range_cmp = compare_semver if r["type"] == "SEMVER" else cmp
        if range_cmp is None:
            continue
        try:
            inside, above = _in_range(r["events"], installed, range_cmp)
        except InvalidVersion:
            continue
        hit = hit or inside
        fixes.extend(above)
    return hit, fixes


def lowest(versions: list[str], ecosystem: str) -> str | None:
    """The lowest of `versions` in `ecosystem`'s order (None when empty)."""
    if not versions:
        return None
    family = family_of(ecosystem)
    if family is None:
        return versions[0]
    try:
        return min(versions, key=cmp_to_key(COMPARATORS[family]))
    except InvalidVersion:
        return versions[0]
