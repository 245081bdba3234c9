"""OSV records as the real exports write them (Debian DSA, GitHub advisories, Go, npm), and
the `all.zip` / directory layouts they come in, built in the tests."""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

CRITICAL_V3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # base score 9.8
MEDIUM_V3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"  # base score 6.1
HIGH_V2 = "AV:N/AC:L/Au:N/C:P/I:P/A:P"  # base score 7.5


def debian(record_id: str, package: str, fixed: str | None, *, ecosystem: str = "Debian:12",
           modified: str = "2024-03-01T10:00:00Z", versions: list[str] | None = None,
           aliases: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A Debian security advisory (source package name, ECOSYSTEM range, explicit versions);
    with no `fixed` and explicit versions, only those versions are affected."""
    events: list[dict[str, str]] = [{"introduced": "0"}]
    if fixed:
        events.append({"fixed": fixed})
    ranges = [] if versions and not fixed else [{"type": "ECOSYSTEM", "events": events}]
    return {
        "schema_version": "1.6.0",
        "id": record_id,
        "summary": f"{package} - security update",
        "details": "Several vulnerabilities were discovered. " * 5,
        "aliases": aliases if aliases is not None else [
            f"CVE-2024-{zlib.crc32(record_id.encode()) % 9999}"],
        "modified": modified,
        "published": "2024-02-28T00:00:00Z",
        "affected": [{
            "package": {"ecosystem": ecosystem, "name": package,
                        "purl": f"pkg:deb/debian/{package}?arch=source"},
            "ranges": ranges,
            "versions": versions or [],
            "database_specific": {"source": "https://security-tracker.debian.org/"},
        }],
        **extra,
    }


def ghsa(record_id: str, ecosystem: str, package: str, ranges: list[dict[str, Any]], *,
         modified: str = "2024-05-01T08:30:00.123456Z", versions: list[str] | None = None,
         severity: list[dict[str, str]] | None = None, db_severity: str | None = "HIGH",
         **extra: Any) -> dict[str, Any]:
    """A GitHub advisory as OSV publishes it (PyPI, npm, Go, Maven, …)."""
    record: dict[str, Any] = {
        "schema_version": "1.6.0",
        "id": record_id,
        "modified": modified,
        "published": "2024-04-30T00:00:00Z",
        "aliases": [f"CVE-{record_id[5:]}"],
        "summary": f"Problem in {package}",
        "details": "An attacker can do things.",
        "severity": severity if severity is not None else [],
        "affected": [{
            "package": {"ecosystem": ecosystem, "name": package},
            "ranges": ranges,
            "versions": versions or [],
            "database_specific": {"source": "https://github.com/advisories"},
        }],
        "references": [{"type": "ADVISORY", "url": "https://example.invalid/advisory"}],
        "database_specific": {"github_reviewed": True, "cwe_ids": ["CWE-79"],
                              **({"severity": db_severity} if db_severity else {})},
        **extra,
    }
    return record


def ecosystem_range(*events: tuple[str, str], kind: str = "ECOSYSTEM") -> dict[str, Any]:
    """`{"type": kind, "events": [{"introduced": "0"}, {"fixed": "1.2"}, …]}`."""
    return {"type": kind, "events": [{k: v} for k, v in events]}


def write_zip(path: Path, records: list[dict[str, Any]],
              extra_members: dict[str, bytes] | None = None) -> Path:
    """An OSV `all.zip`: one `<id>.json` member per record (deflated)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for r in records:
            zf.writestr(f"{r['id']}.json", json.dumps(r))
        for name, data in (extra_members or {}).items():
            zf.writestr(name, data)
    return path


def write_dir(root: Path, records: list[dict[str, Any]], nested: bool = True) -> Path:
    """A directory of OSV JSON files, every other one in a subdirectory."""
    for n, r in enumerate(records):
        folder = root / "more" / "deeper" if nested and n % 2 else root
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{r.get('id', f'unnamed-{n}')}.json").write_text(json.dumps(r))
    return root
