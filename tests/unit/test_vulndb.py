"""The offline vulnerability database (scan/vulndb.py) on a real embedded registry: importing
OSV exports and directories, re-imports, withdrawn and malformed records, zip bombs, and
matching with each ecosystem's version rules."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import pytest

from moorage.bootstrap import Registry
from moorage.scan.vulndb import VulnDatabase

from .osvdata import (
    CRITICAL_V3,
    HIGH_V2,
    MEDIUM_V3,
    debian,
    ecosystem_range,
    ghsa,
    write_dir,
    write_zip,
)


def _ids(findings) -> list[str]:
    return sorted(f.id for f in findings)


def _counts(report, ecosystem: str) -> tuple[int, int, int, int]:
    c = report.ecosystems[ecosystem]
    return c.added, c.updated, c.unchanged, c.skipped


def _pypi(record_id: str, package: str = "Foo_Bar", fixed: str = "1.2.0", **kw):
    return ghsa(record_id, "PyPI", package,
                [ecosystem_range(("introduced", "0"), ("fixed", fixed))], **kw)


def test_import_a_zip_and_a_directory(registry: Registry, tmp_path: Path) -> None:
    zip_path = write_zip(tmp_path / "Debian" / "all.zip", [
        debian("DSA-5001-1", "openssl", "3.0.11-1~deb12u2"),
        debian("DSA-5002-1", "curl", "7.88.1-10+deb12u5"),
        debian("DSA-5003-1", "zlib", None, ecosystem="Debian:11",
               versions=["1:1.2.11.dfsg-2+deb11u1"]),
    ])
    folder = write_dir(tmp_path / "pypi", [_pypi("GHSA-aaaa-bbbb-0001"),
                                           _pypi("GHSA-aaaa-bbbb-0002", "requests", "2.31.0")])

    report = registry.vulndb.import_paths([zip_path, folder])

    assert _counts(report, "Debian") == (3, 0, 0, 0)
    assert _counts(report, "PyPI") == (2, 0, 0, 0)
    assert report.problem_count == 0
    status = {s.ecosystem: s for s in registry.vulndb.status()}
    assert sorted(status) == ["Debian:11", "Debian:12", "PyPI"]
    assert (status["Debian:12"].records, status["Debian:11"].records) == (2, 1)
    assert status["PyPI"].records == 2 and status["PyPI"].withdrawn == 0
    # 2024-05-01T08:30:00.123456Z
    assert status["PyPI"].newest_modified == pytest.approx(1714552200.123456, abs=1e-6)
    assert status["Debian:12"].imported_at is not None
    assert _ids(registry.vulndb.match("Debian:12", "openssl", "3.0.11-1~deb12u1")) == [
        "DSA-5001-1"]
    assert _ids(registry.vulndb.match("PyPI", "requests", "2.30.0")) == ["GHSA-aaaa-bbbb-0002"]


def test_a_reimport_changes_nothing(registry: Registry, tmp_path: Path) -> None:
    zip_path = write_zip(tmp_path / "all.zip", [debian("DSA-5001-1", "openssl", "3.0.11-1"),
                                                debian("DSA-5002-1", "curl", "7.88.1-10")])
    registry.vulndb.import_paths([zip_path])
    before = registry.vulndb.status()

    again = registry.vulndb.import_paths([zip_path])

    assert _counts(again, "Debian") == (0, 0, 2, 0)
    after = registry.vulndb.status()
    assert [(s.ecosystem, s.records, s.newest_modified) for s in after] == [
        (s.ecosystem, s.records, s.newest_modified) for s in before]
    # one finding, not one per import: the affected rows were not added twice
    assert len(registry.vulndb.match("Debian:12", "openssl", "3.0.10-1")) == 1


def test_a_newer_modified_updates_in_place_and_an_older_one_does_not(
        registry: Registry, tmp_path: Path) -> None:
    first = write_zip(tmp_path / "v1" / "all.zip",
                      [debian("DSA-5001-1", "openssl", "3.0.11-1",
                              modified="2024-03-01T10:00:00Z")])
    newer = write_zip(tmp_path / "v2" / "all.zip",
                      [debian("DSA-5001-1", "openssl", "3.0.13-1",
                              modified="2024-04-01T10:00:00Z")])
    registry.vulndb.import_paths([first])
    assert registry.vulndb.match("Debian:12", "openssl", "3.0.12-1") == []

    report = registry.vulndb.import_paths([newer])

    assert _counts(report, "Debian") == (0, 1, 0, 0)
    [finding] = registry.vulndb.match("Debian:12", "openssl", "3.0.12-1")
    assert finding.fixed == "3.0.13-1"
    # the older export again: it does not take the record back
    stale = registry.vulndb.import_paths([first])
    assert _counts(stale, "Debian") == (0, 0, 1, 0)
    assert registry.vulndb.match("Debian:12", "openssl", "3.0.12-1")[0].fixed == "3.0.13-1"


def test_a_withdrawn_record_stops_matching(registry: Registry, tmp_path: Path) -> None:
    live = _pypi("GHSA-wwww-0000-0001", modified="2024-05-01T00:00:00Z")
    registry.vulndb.import_paths([write_dir(tmp_path / "a", [live])])
    assert _ids(registry.vulndb.match("PyPI", "foo-bar", "1.0")) == ["GHSA-wwww-0000-0001"]

    gone = {**live, "modified": "2024-06-01T00:00:00Z", "withdrawn": "2024-06-01T00:00:00Z"}
    report = registry.vulndb.import_paths([write_dir(tmp_path / "b", [gone])])

    assert _counts(report, "PyPI") == (0, 1, 0, 0)
    assert registry.vulndb.match("PyPI", "foo-bar", "1.0") == []
    [status] = registry.vulndb.status()
    assert (status.records, status.withdrawn) == (0, 1)


def test_malformed_records_are_skipped_and_counted(registry: Registry, tmp_path: Path) -> None:
    good = _pypi("GHSA-good-0000-0001")
    no_id = {k: v for k, v in _pypi("GHSA-x").items() if k != "id"}
    bad_time = {**_pypi("GHSA-bad-time-0001"), "modified": "yesterday"}
    bad_name = _pypi("GHSA-bad-name-0001")
    bad_name["affected"][0]["package"]["name"] = 42
    two_kinds = _pypi("GHSA-bad-event-0001")
    two_kinds["affected"][0]["ranges"][0]["events"][1] = {"fixed": "1.2", "introduced": "1.0"}
    bad_range = _pypi("GHSA-bad-range-0001")
    bad_range["affected"][0]["ranges"] = {"type": "ECOSYSTEM"}
    folder = write_dir(tmp_path / "mixed", [good, no_id, bad_time, bad_name, two_kinds,
                                            bad_range], nested=False)
    (folder / "broken.json").write_text('{"id": "GHSA-trunc')

    report = registry.vulndb.import_paths([folder])

    assert _counts(report, "PyPI") == (1, 0, 0, 5)
    assert report.ecosystems["(unknown)"].skipped == 1  # not JSON: no ecosystem to name
    assert report.problem_count == 6
    reasons = " | ".join(p.reason for p in report.problems)
    for expected in ("no 'id'", "'modified' is not an RFC 3339 time", "'name' is not a string",
                     "an event needs one of", "ranges is not a list", "not JSON"):
        assert expected in reasons, reasons
    assert _ids(registry.vulndb.match("PyPI", "foo_bar", "1.0")) == ["GHSA-good-0000-0001"]


def _patch_central_size(path: Path, member: str, size: int) -> None:
    """Make the central directory claim `size` uncompressed bytes for `member` (a lying zip)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_len] == member.encode():
            struct.pack_into("<L", data, at + 24, size)
            path.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{member} not in {path}")


def test_zip_bombs_are_refused_without_inflating_them(registry: Registry,
                                                      tmp_path: Path) -> None:
    zeros = b"0" * (12 * 1024 * 1024)  # deflates ~1000x
    honest = write_zip(tmp_path / "honest" / "all.zip", [debian("DSA-1-1", "curl", "8.0-1")],
                       {"bomb.json": zeros})
    lying = write_zip(tmp_path / "lying" / "all.zip", [debian("DSA-2-1", "curl", "8.0-1")],
                      {"bomb.json": zeros, "big.json": b"[]"})
    with zipfile.ZipFile(lying) as zf:
        compressed = zf.getinfo("bomb.json").compress_size
    _patch_central_size(lying, "bomb.json", compressed * 2)  # claims a harmless 2x
    _patch_central_size(lying, "big.json", 17 * 1024 * 1024)

    report = registry.vulndb.import_paths([honest, lying])

    reasons = {p.origin.rsplit(":", 1)[1] + "@" + p.origin.split("/")[-2]: p.reason
               for p in report.problems}
    assert "compression ratio over 100x" in reasons["bomb.json@honest"]
    # the lying header passes the first check; the inflater stops at its budget (100x the
    # compressed size), long before the 12 MiB the member really holds
    assert "inflates beyond its size and ratio limits" in reasons["bomb.json@lying"]
    assert "more than 16777216" in reasons["big.json@lying"]
    assert report.ecosystems["(unknown)"].skipped == 3
    assert _counts(report, "Debian") == (2, 0, 0, 0)


def test_matching_follows_osv_range_events(registry: Registry, tmp_path: Path) -> None:
    records = [
        # two introduced/fixed pairs in one range
        ghsa("GHSA-pair-0000-0001", "PyPI", "Foo_Bar", [ecosystem_range(
            ("introduced", "0"), ("fixed", "1.2.0"), ("introduced", "2.0"), ("fixed", "2.0.3"))]),
        # last_affected: that version still affected, nothing fixed
        ghsa("GHSA-last-0000-0001", "npm", "Left-Pad", [ecosystem_range(
            ("introduced", "1.0.0"), ("last_affected", "1.4.2"))]),
        # a SEMVER range up to a limit (Go writes versions without the `v` here)
        ghsa("GO-2024-0001", "Go", "github.com/Example/Mod", [ecosystem_range(
            ("introduced", "0"), ("limit", "1.5.0"), kind="SEMVER")]),
        # explicit versions only, and a GIT range that must be ignored
        ghsa("GHSA-list-0000-0001", "crates.io", "tokio", [
            {"type": "GIT", "repo": "https://example.invalid/tokio.git",
             "events": [{"introduced": "0"}, {"fixed": "abc123"}]}],
             versions=["1.20.0", "1.20.1"]),
        # several ranges: the fixed version reported is the first one above the installed
        ghsa("GHSA-many-0000-0001", "Maven", "org.example:lib", [
            ecosystem_range(("introduced", "0"), ("fixed", "1.5")),
            ecosystem_range(("introduced", "1.0"), ("fixed", "1.3"))]),
    ]
    registry.vulndb.import_paths([write_dir(tmp_path / "osv", records)])
    vulndb = registry.vulndb

    def hit(ecosystem: str, name: str, version: str) -> str | None | bool:
        found = vulndb.match(ecosystem, name, version)
        assert len(found) <= 1, found
        return found[0].fixed if found else False

    assert hit("PyPI", "foo-bar", "1.1") == "1.2.0"
    assert hit("PyPI", "FOO.bar", "1.2.0rc1") == "1.2.0"  # PEP 503 name, PEP 440 pre-release
    assert hit("PyPI", "foo_bar", "1.2.0") is False
    assert hit("PyPI", "foo_bar", "1.5") is False
    assert hit("PyPI", "foo_bar", "2.0.1") == "2.0.3"
    assert hit("PyPI", "foo_bar", "2.0.3") is False
    assert hit("npm", "left-pad", "1.4.2") is None
    assert hit("npm", "left-pad", "1.4.3") is False
    assert hit("npm", "left-pad", "0.9.0") is False
    assert hit("npm", "left-pad", "1.4.2-beta.1") is None
    assert hit("Go", "github.com/Example/Mod", "v1.4.9") is None
    assert hit("Go", "github.com/Example/Mod", "v1.5.0") is False
    assert hit("Go", "github.com/example/mod", "v1.4.9") is False  # Go paths keep their case
    assert hit("crates.io", "tokio", "1.20.1") is None
    assert hit("crates.io", "tokio", "1.20.2") is False
    assert hit("Maven", "org.example:lib", "1.1") == "1.3"
    assert hit("Maven", "org.example:lib", "1.4") == "1.5"
    assert hit("Maven", "org.example:lib", "1.5") is False


def test_distribution_matching_uses_release_and_plain_ecosystem(registry: Registry,
                                                                tmp_path: Path) -> None:
    registry.vulndb.import_paths([write_zip(tmp_path / "all.zip", [
        debian("DSA-12-1", "openssl", "3.0.11-1~deb12u2"),
        debian("DEBIAN-CVE-2024-1", "openssl", "3.1.0-1", ecosystem="Debian"),
        debian("DSA-11-1", "openssl", "1.1.1w-0+deb11u1", ecosystem="Debian:11"),
        debian("DSA-12-2", "zlib", None, versions=["1:1.2.13.dfsg-1"]),
    ])])
    vulndb = registry.vulndb

    assert _ids(vulndb.match("Debian:12", "openssl", "3.0.11-1~deb12u1")) == [
        "DEBIAN-CVE-2024-1", "DSA-12-1"]
    # the `~deb12u2` fix is above every `~deb12u1`, below the plain 3.0.11-1
    assert _ids(vulndb.match("Debian:12", "openssl", "3.0.11-1")) == ["DEBIAN-CVE-2024-1"]
    assert _ids(vulndb.match("Debian:11", "openssl", "1.1.1n-0+deb11u5")) == [
        "DEBIAN-CVE-2024-1", "DSA-11-1"]
    # explicit versions are exact (an epoch counts)
    assert _ids(vulndb.match("Debian:12", "zlib", "1:1.2.13.dfsg-1")) == ["DSA-12-2"]
    assert vulndb.match("Debian:12", "zlib", "1.2.13.dfsg-1") == []
    # the binary package name is the SBOM's to map: here only the source name matches
    assert vulndb.match("Debian:12", "libssl3", "3.0.11-1~deb12u1") == []


def test_findings_carry_ids_aliases_and_the_highest_severity(registry: Registry,
                                                             tmp_path: Path) -> None:
    records = [
        _pypi("GHSA-cvss-0000-0001", severity=[{"type": "CVSS_V3", "score": MEDIUM_V3},
                                               {"type": "CVSS_V2", "score": HIGH_V2}]),
        _pypi("GHSA-crit-0000-0001", severity=[{"type": "CVSS_V3", "score": CRITICAL_V3}]),
        _pypi("GHSA-word-0000-0001", db_severity="MODERATE"),
    ]
    registry.vulndb.import_paths([write_dir(tmp_path / "osv", records)])

    findings = registry.vulndb.match("PyPI", "Foo-Bar", "1.0")

    assert [(f.id, f.severity, f.score) for f in findings] == [
        ("GHSA-crit-0000-0001", "critical", 9.8),
        ("GHSA-cvss-0000-0001", "high", 7.5),
        ("GHSA-word-0000-0001", "medium", None),
    ]
    first = findings[0]
    assert first.aliases == ["CVE-crit-0000-0001"]
    assert (first.package, first.installed, first.fixed) == ("Foo-Bar", "1.0", "1.2.0")
    assert first.summary == "Problem in Foo_Bar"
    assert json.loads(json.dumps(first.to_dict()))["fixed"] == "1.2.0"


def test_imports_write_in_batches(registry: Registry, tmp_path: Path) -> None:
    records = [_pypi(f"GHSA-bat-ch00-{n:04d}", package=f"pkg{n}") for n in range(7)]
    seen: list[int] = []
    small = VulnDatabase(registry.database, batch_records=3)

    report = small.import_paths([write_zip(tmp_path / "all.zip", records)],
                                progress=lambda r: seen.append(r.read))

    assert seen == [3, 6]  # one write (and one progress call) per full batch
    assert _counts(report, "PyPI") == (7, 0, 0, 0)
    assert [s.records for s in small.status()] == [7]


def test_import_and_match_on_both_backends(engine, tmp_path: Path) -> None:
    from moorage.metadata.uow import Database

    vulndb = VulnDatabase(Database(engine), batch_records=2)
    first = [_pypi(f"GHSA-both-0000-000{n}", package=f"lib{n}") for n in range(3)]
    vulndb.import_paths([write_dir(tmp_path / "a", first)])
    newer = {**first[0], "modified": "2025-01-01T00:00:00Z", "withdrawn": "2025-01-01T00:00:00Z"}
    newer_fix = {**first[1], "modified": "2025-01-01T00:00:00Z", "affected": [
        {"package": {"ecosystem": "PyPI", "name": "lib1"},
         "ranges": [ecosystem_range(("introduced", "0"), ("fixed", "1.4"))]}]}

    report = vulndb.import_paths([write_dir(tmp_path / "b", [newer, newer_fix, first[2]])])

    assert _counts(report, "PyPI") == (0, 2, 1, 0)
    assert vulndb.match("PyPI", "lib0", "1.0") == []
    assert [f.fixed for f in vulndb.match("PyPI", "lib1", "1.3")] == ["1.4"]
    assert _ids(vulndb.match("PyPI", "lib2", "1.0")) == ["GHSA-both-0000-0002"]
    [status] = vulndb.status()
    assert (status.ecosystem, status.records, status.withdrawn) == ("PyPI", 2, 1)
    assert status.imported_at is not None


def _zip64_claiming(path: Path, entries: int) -> Path:
    """A zip whose zip64 end records claim `entries` members (none is really there)."""
    local = b"PK\x03\x04" + bytes(26)
    eocd64_at = len(local)
    eocd64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, 0,
                         eocd64_at)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd64_at, 1)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                       0xFFFFFFFF, 0)
    path.write_bytes(local + eocd64 + locator + eocd)
    return path


def test_unreadable_zips_are_refused_and_the_next_path_is_imported(registry: Registry,
                                                                   tmp_path: Path) -> None:
    crowded = _zip64_claiming(tmp_path / "crowded.zip", 2_000_001)
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(b"PK\x03\x04" + b"\x00" * 200)  # a zip's start, no directory
    good = write_zip(tmp_path / "good" / "all.zip", [debian("DSA-9-1", "curl", "8.0-1")])

    report = registry.vulndb.import_paths([crowded, damaged, good])

    refused = {Path(p.origin).name: p.reason for p in report.refused}
    assert "2000001 entries, more than 2000000" in refused["crowded.zip"]
    assert "not a zip file" in refused["damaged.zip"]
    assert _counts(report, "Debian") == (1, 0, 0, 0)
    assert report.problem_count == 0
