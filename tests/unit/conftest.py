"""The unit tier's fixtures: a real registry on the embedded default (SQLite + files in a temp
dir), built by `bootstrap` exactly as the server builds it, used without HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A migrated engine on each backend (PostgreSQL from the shared test services)."""
    from moorage.metadata.engine import make_engine, sqlite_url
    from moorage.metadata.migrate import upgrade

    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
    else:
        from support.backends import services_or_skip

        url = services_or_skip().pg.create_database()
    engine = make_engine(url, pool_size=8)
    upgrade(engine)
    yield engine
    engine.dispose()
