"""Shared fixtures: a real `moorage serve` process on 127.0.0.1 (built by tests/support)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.containerd import Containerd, start_containerd
from support.containerd import unavailable as containerd_unavailable

# Re-exported: tests import these from `conftest` (new code imports support.servers).
from support.servers import (  # noqa: F401
    BACKEND,
    SCALE_OUT_BACKENDS,
    BalancedCluster,
    RegistryProcess,
    Server,
    free_port,
    log_lines_since,
    log_marks,
    start_registry,
)

# -- backends (MOORAGE_TEST_BACKEND: see support/servers.py) -----------------------------------

# Tests that look inside the filesystem data dir; tests/scaleout checks the same on S3.
FILESYSTEM_ONLY = {
    "test_identical_blob_in_two_repositories_is_stored_once",
    "test_concurrent_pushes_of_the_same_blob_are_stored_once",
    "test_acknowledged_state_survives_kill_9",
    "test_kill_9_during_streamed_push",
}
# Tests that watch one server's process group; behind the balancer there are three.
SINGLE_NODE_ONLY = {
    "test_sigterm_while_idle_exits_0_promptly": "checks the PIDs of one server's process group",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND not in SCALE_OUT_BACKENDS:
        return
    skip = pytest.mark.skip(reason="inspects the filesystem data dir (S3 twin in tests/scaleout)")
    for item in items:
        name = getattr(item, "originalname", item.name)
        if name in FILESYSTEM_ONLY:
            item.add_marker(skip)
        elif BACKEND == "pg-s3-lb" and name in SINGLE_NODE_ONLY:
            item.add_marker(pytest.mark.skip(reason=SINGLE_NODE_ONLY[name]))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from support.backends import stop_shared_services

    stop_shared_services()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by the protocol tests of a session (two workers, like production)."""
    reg = start_registry(tmp_path_factory.mktemp("registry"), "--workers", "2")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """A containerd of the session's own (skips where it cannot run: not installed, not root)."""
    why = containerd_unavailable()
    if why is not None:
        pytest.skip(why)
    daemon = start_containerd(tmp_path_factory.mktemp("containerd"))
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def sparse_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server started with --allow-sparse."""
    reg = start_registry(tmp_path_factory.mktemp("sparse"), "--workers", "1", "--allow-sparse")
    yield reg
    reg.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[Server]:
    """A server of its own for tests that restart or kill it."""
    reg = start_registry(tmp_path, "--workers", "1")
    yield reg
    reg.stop()
