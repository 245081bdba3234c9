"""Fixtures of the lifecycle tests: servers of their own, and the `moorage` CLI pointed at
their data dir while they serve."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.servers import RegistryProcess, run_moorage, start_local

# No background schedule unless a test asks for it; pull times flushed quickly.
QUIET = {"MOORAGE_GC_INTERVAL": "0", "MOORAGE_PULL_FLUSH_INTERVAL": "0.2"}


@dataclass
class Cli:
    """Runs `moorage <args> --data-dir <the server's data dir>` with the server's environment."""

    data_dir: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return run_moorage(*args, "--data-dir", str(self.data_dir), env=self.env,
                           timeout=timeout, check=check)

    def json(self, *args: str) -> dict:
        return json.loads(self.run(*args, "--json").stdout.strip().splitlines()[-1])

    def gc(self, grace: str = "0", *extra: str) -> dict:
        return self.json("gc", "--grace-period", grace, *extra)


@pytest.fixture
def make_registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Start a server of this test's own with lifecycle settings; yields (server, cli)."""
    started: list[RegistryProcess] = []

    def make(*args: str, auth: bool = False, **env: str) -> tuple[RegistryProcess, Cli]:
        full_env = {**QUIET, **env}
        reg = start_local(tmp_path / f"r{len(started)}" / "data", "--workers", "2", *args,
                          auth=auth, **full_env)
        started.append(reg)
        return reg, Cli(reg.data_dir, full_env)

    yield make
    for reg in started:
        reg.stop()


@pytest.fixture
def lc(make_registry) -> Iterator[tuple[RegistryProcess, Cli]]:  # type: ignore[no-untyped-def]
    """A two-worker server whose deleted tags are collectable at once."""
    yield make_registry(MOORAGE_TAG_RESTORE_WINDOW="0")
