"""The unit tier's fixtures: a real registry on the embedded default (SQLite + files in a temp
dir), built by `bootstrap` exactly as the server builds it, used without HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.bootstrap import Registry, open_registry, prepare
from moorage.config import Settings


def make_registry(data_dir: Path, **overrides: object) -> Registry:
    """A migrated embedded registry in `data_dir` (no auth unless `auth=True` is passed)."""
    values: dict[str, object] = {"auth": False, **overrides}
    settings = Settings.from_env({}, data_dir=data_dir, **values)
    prepare(settings)
    return open_registry(settings)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A fresh embedded registry; services are `registry.uploads`, `registry.manifests`, …"""
    built = make_registry(tmp_path / "registry")
    try:
        yield built
    finally:
        built.close()
