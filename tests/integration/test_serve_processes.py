"""What `moorage serve` runs as: a lean supervisor (no server code at all) and workers forked from
one fully imported process, none of which carries the CLI's parser (Typer, Click, Pydantic) or
the migration tooling (Alembic, Mako). A worker that dies is replaced; SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
from support.servers import BACKEND, log_text, start_registry

pytestmark = pytest.mark.skipif(BACKEND == "pg-s3-lb", reason="one node's processes")


def _mapped(pid: int, fragment: str) -> list[str]:
    with open(f"/proc/{pid}/maps") as maps:
        return sorted({line.split()[-1] for line in maps if fragment in line})


def _tree(pid: int) -> tuple[psutil.Process, list[psutil.Process]]:
    root = psutil.Process(pid)
    return root, root.children()


def _wait_for(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_supervisor_is_lean_and_workers_carry_no_cli_parser(tmp_path: Path):
    reg = start_registry(tmp_path, "--workers", "2")
    try:
        assert requests.get(f"{reg.url}/v2/", timeout=10).status_code == 200
        supervisor, workers = _tree(reg.proc.pid)
        assert len(workers) == 2, [p.cmdline() for p in workers]
        for proc in (supervisor, *workers):
            command = " ".join(proc.cmdline())
            assert "moorage serve" in command and reg.host in command, command
            assert _mapped(proc.pid, "pydantic_core") == [], command
        # The supervisor has not even loaded the HTTP server or the SQL toolkit.
        assert _mapped(supervisor.pid, "aiohttp") == []
        assert _mapped(supervisor.pid, "sqlalchemy") == []
        assert _mapped(workers[0].pid, "aiohttp") != []
    finally:
        reg.stop()


def test_a_killed_worker_is_replaced_and_sigterm_stops_everything(tmp_path: Path):
    reg = start_registry(tmp_path, "--workers", "2")
    supervisor, workers = _tree(reg.proc.pid)
    victim = workers[0].pid
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        alive = [p.pid for p in supervisor.children() if p.status() != psutil.STATUS_ZOMBIE]
        return len(alive) == 2 and victim not in alive

    assert _wait_for(replaced), log_text(reg)[-3000:]
    assert "worker exited, restarting" in log_text(reg)
    for _ in range(20):  # both workers answer (connections land on either)
        assert requests.get(f"{reg.url}/v2/", timeout=10).status_code == 200
    survivors = supervisor.children()
    assert reg.stop() == 0
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in survivors)
    assert "stopped" in log_text(reg)


def test_the_server_module_imports_no_migration_tooling():
    probe = ("import sys, moorage.server, moorage.bootstrap, moorage.supervisor; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'alembic', 'mako', 'pygments', 'typer', 'pydantic'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env={**os.environ}).stdout.strip()
    assert out == "[]"
