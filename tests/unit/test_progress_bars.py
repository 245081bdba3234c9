"""Long commands draw a rich progress bar on stderr when it is a terminal, and none with
`--quiet` or when stderr is a pipe."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import make_registry


def _stderr_on_a_terminal(*args: str) -> tuple[int, str]:
    """Run `moorage ARGS` with stderr on a pseudo-terminal; (exit code, what it drew)."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "moorage", *args], stdout=subprocess.DEVNULL,
                            stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(60), out.decode(errors="replace")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    make_registry(tmp_path / "reg").close()
    return tmp_path / "reg"


@pytest.mark.parametrize("command", [["check"], ["gc"], ["retention", "apply"]])
def test_a_terminal_gets_a_progress_bar(data_dir: Path, command: list[str]):
    code, drawn = _stderr_on_a_terminal(*command, "--data-dir", str(data_dir))
    assert code == 0, drawn
    assert "━" in drawn  # rich's bar


@pytest.mark.parametrize("command", [["check"], ["gc"]])
def test_quiet_or_a_pipe_gets_none(data_dir: Path, command: list[str]):
    code, drawn = _stderr_on_a_terminal(*command, "--quiet", "--data-dir", str(data_dir))
    assert code == 0 and "━" not in drawn
    piped = subprocess.run([sys.executable, "-m", "moorage", *command, "--data-dir",
                            str(data_dir)], capture_output=True, text=True, timeout=60,
                           check=False)
    assert piped.returncode == 0 and "━" not in piped.stderr
