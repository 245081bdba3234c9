"""Fixtures of the access-control tests: auth-enabled servers (see authkit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .authkit import World, build_world, new_password, start_auth_registry


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The shared auth-enabled server (two workers) with its accounts and namespaces."""
    password = new_password()
    reg = start_auth_registry(
        tmp_path_factory.mktemp("authworld"), "--workers", "2", admin_password=password
    )
    try:
        yield build_world(reg, password)
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """An auth-enabled server with ONE worker: per-process caches (60 s basic-auth logins, 2 s
    policy decisions) are then cleared by every change made through the API, so the effect of a
    change can be checked at once."""
    password = new_password()
    reg = start_auth_registry(
        tmp_path_factory.mktemp("authsingle"), "--workers", "1", admin_password=password
    )
    try:
        yield World(reg=reg, admin_password=password)
    finally:
        reg.stop()


@pytest.fixture
def reg_factory(tmp_path: Path) -> Iterator:
    """Start servers of a test's own (stopped at the end)."""
    started = []

    def start(*args: str, sub: str = "srv", admin_password: str | None = None, **env: str):
        reg = start_auth_registry(tmp_path / sub, *args, admin_password=admin_password, **env)
        started.append(reg)
        return reg

    yield start
    for reg in started:
        reg.stop()
