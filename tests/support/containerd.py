"""A containerd of the tests' own: its root, state and socket in a temp dir (no CRI, no
snapshotter use: the tests pull and push content only), started as a child and stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from support.backends import stop_process

CONFIG = """version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"""


@dataclass
class Containerd:
    """A running containerd; `ctr(...)` runs the client against it."""

    base: Path
    proc: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return str(self.base / "containerd.sock")

    def ctr(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """`ctr --address … --namespace moorage-test ARGS` (never raises on a non-zero exit)."""
        return subprocess.run(["ctr", "--address", self.address, "--namespace", "moorage-test",
                               *args], capture_output=True, text=True, timeout=timeout,
                              check=False)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        stop_process(self.proc, signal.SIGTERM, 10)


def unavailable() -> str | None:
    """Why no containerd can be started here (None when one can)."""
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        return "containerd is not installed (Debian package containerd)"
    if os.geteuid() != 0:
        return "containerd needs root"
    return None


def start_containerd(base: Path) -> Containerd:
    """Start containerd in `base` and wait until `ctr version` answers."""
    base.mkdir(parents=True, exist_ok=True)
    config = base / "config.toml"
    config.write_text(CONFIG.format(base=base))
    log = (base / "containerd.log").open("wb")
    proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    started = Containerd(base, proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"containerd exited: {(base / 'containerd.log').read_text()}")
        if Path(started.address).exists() and started.ctr("version", timeout=10).returncode == 0:
            return started
        time.sleep(0.2)
    started.stop()
    raise RuntimeError("containerd did not answer within 60 s")
