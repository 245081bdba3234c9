"""Fixtures of the lifecycle tests: servers of their own, and the `moorage` CLI pointed at
their data dir while they serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from conftest import RegistryProcess, free_port

# No background schedule unless a test asks for it; pull times flushed quickly.
QUIET = {"MOORAGE_GC_INTERVAL": "0", "MOORAGE_PULL_FLUSH_INTERVAL": "0.2"}


@dataclass
class Cli:
    """Runs `moorage <args> --data-dir <the server's data dir>` with the server's environment."""

    data_dir: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "moorage", *args, "--data-dir", str(self.data_dir)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, **self.env})
        if check:
            assert proc.returncode == 0, f"{cmd}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def json(self, *args: str) -> dict:
        return json.loads(self.run(*args, "--json").stdout.strip().splitlines()[-1])

    def gc(self, grace: str = "0", *extra: str) -> dict:
        return self.json("gc", "--grace-period", grace, *extra)


def _start(reg: RegistryProcess) -> None:
    """Start, tolerating a slow first answer on a loaded machine (a read timeout is not fatal)."""
    try:
        reg.start(timeout=60)
        return
    except requests.ReadTimeout:
        pass
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(reg.url + "/v2/", timeout=10).status_code in (200, 401):
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("moorage did not answer")


@pytest.fixture
def make_registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Start a server of this test's own with lifecycle settings; yields (server, cli)."""
    started: list[RegistryProcess] = []

    def make(*args: str, auth: bool = False, **env: str) -> tuple[RegistryProcess, Cli]:
        full_env = {**QUIET, **env}
        data = tmp_path / f"r{len(started)}" / "data"
        data.mkdir(parents=True)
        reg = RegistryProcess(data_dir=data, port=free_port(),
                              extra_args=["--workers", "2", *args], env=full_env, auth=auth)
        started.append(reg)
        _start(reg)
        return reg, Cli(reg.data_dir, full_env)

    yield make
    for reg in started:
        reg.stop()


@pytest.fixture
def lc(make_registry) -> Iterator[tuple[RegistryProcess, Cli]]:  # type: ignore[no-untyped-def]
    """A two-worker server whose deleted tags are collectable at once."""
    yield make_registry(MOORAGE_TAG_RESTORE_WINDOW="0")
