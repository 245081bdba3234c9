"""`moorage vulndb import | status | match` as real processes against a registry's data dir
(the rest in-process: every interpreter start costs seconds here)."""

from __future__ import annotations

import json
from pathlib import Path

from support.servers import run_moorage
from typer.testing import CliRunner

from moorage.cli import app

from .conftest import make_registry
from .osvdata import CRITICAL_V3, debian, ecosystem_range, ghsa, write_dir, write_zip


def test_import_then_status_and_match_through_the_cli(tmp_path: Path) -> None:
    make_registry(tmp_path / "reg").close()
    where = ("--data-dir", str(tmp_path / "reg"))
    export = write_zip(tmp_path / "Debian" / "all.zip", [
        debian("DSA-5001-1", "openssl", "3.0.11-1~deb12u2", aliases=["CVE-2023-5363"],
               severity=[{"type": "CVSS_V3", "score": CRITICAL_V3}]),
        debian("DSA-5002-1", "curl", "7.88.1-10+deb12u5"),
    ])
    folder = write_dir(tmp_path / "pypi", [
        ghsa("GHSA-cli0-0000-0001", "PyPI", "Jinja2",
             [ecosystem_range(("introduced", "0"), ("fixed", "3.1.3"))]),
    ])
    (folder / "broken.json").write_text("{")

    imported = run_moorage("vulndb", "import", str(export), str(folder), *where)

    lines = imported.stdout.split("\n")
    assert any(line.split() == ["Debian", "2", "0", "0", "0"] for line in lines), imported.stdout
    assert any(line.split() == ["PyPI", "1", "0", "0", "0"] for line in lines), imported.stdout
    assert "broken.json: not JSON" in imported.stderr

    again = CliRunner().invoke(app, ["vulndb", "import", str(export), "--json", *where])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["ecosystems"]["Debian"] == {
        "added": 0, "updated": 0, "unchanged": 2, "skipped": 0}

    status = run_moorage("vulndb", "status", "--json", *where)
    rows = {r["ecosystem"]: r for r in json.loads(status.stdout)["ecosystems"]}
    assert (rows["Debian:12"]["records"], rows["PyPI"]["records"]) == (2, 1)
    assert rows["Debian:12"]["newest_modified"] == "2024-03-01T10:00:00.000000Z"
    assert rows["PyPI"]["imported_at"].endswith("Z")

    found = run_moorage("vulndb", "match", "Debian:12", "openssl", "3.0.11-1~deb12u1", *where)
    [row] = [line for line in found.stdout.split("\n") if line.startswith("DSA-")]
    assert row.split()[:5] == ["DSA-5001-1", "CVE-2023-5363", "critical", "9.8",
                               "3.0.11-1~deb12u2"], found.stdout
    none = CliRunner().invoke(app, ["vulndb", "match", "PyPI", "jinja2", "3.1.3", *where])
    assert "no known vulnerabilities for jinja2 3.1.3 in PyPI" in none.stdout

    missing = CliRunner().invoke(app, ["vulndb", "import", str(tmp_path / "nope.zip"), *where])
    assert missing.exit_code == 1
    assert "nope.zip: no such file or directory" in missing.stderr
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(b"PK\x03\x04" + bytes(100))
    partly = CliRunner().invoke(app, ["vulndb", "import", str(damaged), str(folder), *where])
    assert partly.exit_code == 1
    assert "error: refused" in partly.stderr and "damaged.zip" in partly.stderr
    assert any(line.split() == ["PyPI", "0", "0", "1", "0"] for line in partly.stdout.split("\n"))
