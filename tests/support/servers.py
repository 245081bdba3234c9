"""Moorage server processes for tests: started on a free 127.0.0.1 port, stopped by PID.

`start_registry` is the one way a test gets a server: the backend comes from
MOORAGE_TEST_BACKEND (default SQLite + filesystem; pg-s3: PostgreSQL + SeaweedFS, a fresh
database and bucket prefix per server; pg-s3-lb: three such nodes on one database and prefix
behind a round-robin balancer, addressed like one server).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

BACKEND = os.environ.get("MOORAGE_TEST_BACKEND", "fs")
SCALE_OUT_BACKENDS = ("pg-s3", "pg-s3-lb")
LB_NODES = 3


# Features that add content of their own on every push (an SBOM referrer per image) would change
# what most tests see (and model indexing adds a job per push): off unless a test turns them on.
# Chunk dedup is off too: a job per image push the other suites do not need (tests/*/test_chunks
# turn it on for their own servers).
TEST_DEFAULTS = {"MOORAGE_SBOM_ON_PUSH": "0", "MOORAGE_MODELS_ON_PUSH": "0",
                 "MOORAGE_INSIGHTS_ON_PUSH": "0", "MOORAGE_CHUNK_DEDUP": "0"}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Address:
    """url and host of something listening on 127.0.0.1:`port`."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class RegistryProcess(_Address):
    """A running `moorage serve` child process."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    auth: bool = False  # protocol tests run an open registry (--no-auth)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    tls_ca: str | None = None  # serving HTTPS (--tls-cert in extra_args): the CA that signed it

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_ca else 'http'}://127.0.0.1:{self.port}"

    @property
    def log_paths(self) -> list[Path]:
        """Every log the server writes (one here; one per node for a cluster)."""
        return [self.log_path] if self.log_path is not None else []

    def start(self, timeout: float = 60.0) -> RegistryProcess:
        """Start the server and wait until GET /v2/ answers."""
        self.log_path = self.data_dir.parent / f"moorage-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 (the server keeps it)
        cmd = [
            sys.executable, "-m", "moorage", "serve",
            "--listen", f"127.0.0.1:{self.port}",
            "--data-dir", str(self.data_dir),
            *([] if self.auth else ["--no-auth"]),
            *self.extra_args,
        ]  # fmt: skip
        env = {**TEST_DEFAULTS, **os.environ, **self.env}
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        probe = 1.0  # a loaded box may take longer to answer the first request: allow it more
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moorage exited early: {self.log_path.read_text()[-4000:]}")
            try:
                answer = requests.get(self.url + "/v2/", timeout=probe, verify=self.tls_ca or True)
                if answer.status_code in (200, 401):
                    return self
            except requests.ReadTimeout:  # listening, but too busy to answer yet
                probe = min(probe * 2, 10.0)
            except requests.RequestException:  # not listening yet
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moorage did not start: {self.log_path.read_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Stop the server by PID (SIGTERM by default, SIGKILL for crash tests)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        """Simulate a crash: SIGKILL the whole process group of workers."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


class BalancedCluster(_Address):
    """Nodes sharing one database and bucket prefix behind a round-robin balancer, addressed
    like one RegistryProcess: url, host and port are the balancer's; start, stop and kill act
    on every node at once."""

    def __init__(
        self, data_dir: Path, count: int, backend_args: list[str], args: list[str],
        env: dict[str, str], auth: bool,
    ) -> None:
        from support.balancer import Balancer

        self.data_dir = data_dir  # each node's data dir and log are inside it
        self.backend_args = backend_args
        self.nodes = []
        for i in range(count):
            (data_dir / f"node{i}").mkdir(parents=True, exist_ok=True)
            self.nodes.append(RegistryProcess(
                data_dir=data_dir / f"node{i}", extra_args=[*backend_args, *args], env=env,
                auth=auth,
            ))
        self.balancer = Balancer([node.port for node in self.nodes])
        self._failed: RegistryProcess | None = None

    @property
    def port(self) -> int:
        return self.balancer.port

    @property
    def env(self) -> dict[str, str]:
        return self.nodes[0].env

    @property
    def extra_args(self) -> list[str]:
        return self.nodes[0].extra_args[len(self.backend_args):]

    @extra_args.setter
    def extra_args(self, args: list[str]) -> None:
        for node in self.nodes:
            node.extra_args = [*self.backend_args, *args]

    @property
    def log_path(self) -> Path | None:
        """The log of the node that last exited with an error, else of the first node."""
        return (self._failed or self.nodes[0]).log_path

    @property
    def log_paths(self) -> list[Path]:
        """The logs of every node: a request may have gone to any of them."""
        return [node.log_path for node in self.nodes if node.log_path is not None]

    def start(self, timeout: float = 90.0) -> BalancedCluster:
        """Start every node (in parallel), then the balancer on its same port."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.start(timeout), self.nodes))
        if self.balancer.proc is None:
            self.balancer.start()
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Stop every node; the first non-zero exit code, else 0 (None if none was running)."""
        codes = [(node, node.stop(sig, timeout)) for node in self.nodes]
        self.balancer.stop()
        failed = [(node, code) for node, code in codes if code not in (0, None)]
        if failed:
            self._failed = failed[0][0]
            return failed[0][1]
        return 0 if any(code is not None for _, code in codes) else None

    def kill(self) -> None:
        """Simulate a crash of every node."""
        for node in self.nodes:
            node.kill()


Server = RegistryProcess | BalancedCluster


def backend_settings() -> tuple[list[str], dict[str, str]]:
    """CLI args and environment that put a new server on the MOORAGE_TEST_BACKEND backend."""
    if BACKEND in SCALE_OUT_BACKENDS:
        from support.backends import shared_services

        return shared_services().node_settings()
    return [], {}


def start_registry(tmp_path: Path, *args: str, auth: bool = False, **env: str) -> Server:
    """Start a fresh server with its own data dir under tmp_path.

    Protocol tests run an open registry (`--no-auth`); access-control tests pass auth=True.
    With MOORAGE_TEST_BACKEND=pg-s3-lb the "server" is three nodes behind a balancer.
    """
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    backend_args, backend_env = backend_settings()
    if BACKEND == "pg-s3-lb":
        return BalancedCluster(
            data, LB_NODES, backend_args, list(args), {**backend_env, **env}, auth
        ).start()
    return RegistryProcess(
        data_dir=data, extra_args=[*backend_args, *args], env={**backend_env, **env}, auth=auth
    ).start()


def start_local(
    data_dir: Path, *args: str, auth: bool = False, timeout: float = 60.0, **env: str
) -> RegistryProcess:
    """Start a server on SQLite + files in `data_dir` whatever the test backend (for tests that
    look inside the data dir, or pass their own --database/--storage)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return RegistryProcess(data_dir=data_dir, extra_args=list(args), env=env, auth=auth).start(
        timeout
    )


# -- logs --------------------------------------------------------------------------------------


def log_marks(server: Server) -> dict[Path, int]:
    """Where each of the server's logs ends now (for `log_lines_since`)."""
    return {path: path.stat().st_size for path in server.log_paths}


def log_lines_since(marks: dict[Path, int]) -> list[str]:
    """The lines the logs gained since `log_marks`."""
    lines: list[str] = []
    for path, start in marks.items():
        with open(path, "rb") as log:
            log.seek(start)
            lines.extend(log.read().decode(errors="replace").splitlines())
    return lines


def log_text(server: Server) -> str:
    """Everything the server wrote to stdout/stderr so far."""
    return server.log_path.read_text(errors="replace") if server.log_path else ""


# -- the moorage command -----------------------------------------------------------------------


def run_moorage(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    check: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """`python -m moorage ARGS` (the `moorage` command) in a process of its own (`input` on
    its stdin)."""
    p = subprocess.run(
        [sys.executable, "-m", "moorage", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**TEST_DEFAULTS, **os.environ, **(env or {})},
        check=False,
        cwd=cwd,
    )
    if check and p.returncode != 0:
        raise AssertionError(
            f"moorage {' '.join(args)} -> {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
        )
    return p


def cli_target(server: Server) -> tuple[list[str], dict[str, str]]:
    """The CLI options (data dir, database, storage) and environment that reach the server's
    registry."""
    node = server.nodes[0] if isinstance(server, BalancedCluster) else server
    target = ["--data-dir", str(node.data_dir)]
    extra = list(node.extra_args)
    for flag in ("--database", "--storage"):
        if flag in extra:
            target += [flag, extra[extra.index(flag) + 1]]
    return target, dict(node.env)


def open_registry_of(server: Server):  # type: ignore[no-untyped-def]
    """The server's registry opened in this process (bootstrap.open_existing), to reach into
    its database and blob store as an operator's tool would."""
    from moorage.bootstrap import open_existing
    from moorage.config import Settings

    args, env = cli_target(server)
    options = dict(zip(args[::2], args[1::2], strict=True))
    # The S3 store reads its AWS_* credentials from the process environment (the test S3
    # server's, the same for the whole session).
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    return open_existing(Settings.from_env(
        {**os.environ, **env}, data_dir=Path(options["--data-dir"]),
        database_url=options.get("--database"), storage_url=options.get("--storage")))
