"""Fixtures of the HTTP protocol tests (the servers themselves come from tests/conftest.py)."""

from __future__ import annotations

import pytest
from support.oci import new_repo


@pytest.fixture
def repo() -> str:
    """A repository name no other test uses."""
    return new_repo()


@pytest.fixture
def repo2() -> str:
    """A second unique repository name."""
    return new_repo("it2")


@pytest.fixture(params=["sha256", "sha512"])
def algo(request: pytest.FixtureRequest) -> str:
    """Digest algorithm: every blob flow runs with sha256 and sha512 (conformance suite B)."""
    return request.param
