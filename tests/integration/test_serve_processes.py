"""What `moorage serve` runs as: a supervisor and its workers, none of which carries the CLI's
parser (Typer, Click, Pydantic) or the migration tooling (Alembic, Mako). Those would only take
memory in every serving process (about 25 MiB of the tree's PSS before this was fixed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests
from support.servers import BACKEND, start_registry

pytestmark = pytest.mark.skipif(BACKEND == "pg-s3-lb", reason="one node's processes")


def _mapped_files(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as maps:
        return {line.split()[-1] for line in maps if "/" in line}


def test_serving_processes_carry_no_cli_parser(tmp_path: Path):
    reg = start_registry(tmp_path, "--workers", "2")
    try:
        assert requests.get(f"{reg.url}/v2/", timeout=10).status_code == 200
        root = psutil.Process(reg.proc.pid)
        tree = [root, *root.children(recursive=True)]
        assert len(tree) == 3, [p.cmdline() for p in tree]
        for proc in tree:
            command = " ".join(proc.cmdline())
            assert "moorage serve" in command and reg.host in command, command
            libraries = [f for f in _mapped_files(proc.pid) if "pydantic_core" in f]
            assert libraries == [], f"{command} maps {libraries}"
    finally:
        reg.stop()


def test_the_server_module_imports_no_migration_tooling():
    probe = ("import sys, moorage.server, moorage.bootstrap; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'alembic', 'mako', 'pygments', 'typer', 'pydantic'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env={**os.environ}).stdout.strip()
    assert out == "[]"
