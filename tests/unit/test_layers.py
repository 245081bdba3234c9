"""The import rules of ../shared/design.md that the code keeps today, checked on every module.

Imports go downward only: `oci/` is pure domain and imports nothing of ours; `storage/` and
`metadata/` know neither each other nor HTTP; no lower layer imports `web/` or `cli/`; only
`metadata/` speaks SQL among the services and background layers; `web/` and `cli/` get every
service from `bootstrap.py` and touch no engine, store or SQL. Services open units of work
(`metadata/uow.py`); the old store classes with transactions of their own are gone and stay
gone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import moorage

PACKAGE = Path(moorage.__file__).parent


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules `path` imports (relative imports resolved)."""
    package = ".".join(("moorage", *path.relative_to(PACKAGE).with_suffix("").parts[:-1]))
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def _offenders(layer: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in _modules(layer):
        bad = sorted(n for n in _imports(path)
                     if any(n == f or n.startswith(f + ".") for f in forbidden))
        if bad:
            found[str(path.relative_to(PACKAGE))] = bad
    return found


OURS_EXCEPT_OCI = tuple(
    f"moorage.{p.name}" for p in PACKAGE.iterdir() if p.name not in ("oci", "__pycache__")
    and (p.is_dir() or p.suffix == ".py")
) + tuple(f"moorage.{p.stem}" for p in PACKAGE.glob("*.py"))

# The store classes that held their own transactions are gone: services open units of work.
STORES = ("moorage.metadata.access_store", "moorage.metadata.outbox_store",
          "moorage.metadata.jobs_store", "moorage.metadata.usage")

RULES = {
    "oci": OURS_EXCEPT_OCI,
    "storage": ("moorage.metadata", "moorage.web", "moorage.cli", "moorage.registry"),
    "metadata": ("moorage.storage", "moorage.web", "moorage.cli", "moorage.registry"),
    "registry": ("moorage.web", "moorage.cli", "sqlalchemy", *STORES),
    "auth": ("moorage.web", "moorage.cli", "sqlalchemy", *STORES),
    "jobs": ("moorage.web", "moorage.cli", "sqlalchemy", *STORES),
    "events": ("moorage.web", "moorage.cli", "sqlalchemy", *STORES),
    "policy": ("moorage.web", "moorage.cli", "moorage.storage", "moorage.metadata",
               "sqlalchemy"),
    "gc": ("moorage.web", "moorage.cli", "sqlalchemy", *STORES),
    # Metrics read rows through units of work, like a service, and render for web/ to serve.
    "metrics": ("moorage.web", "moorage.cli", "sqlalchemy", *STORES),
    # Scanning reads blobs through BlobStore and rows through units of work, like a service.
    "scan": ("moorage.web", "moorage.cli", "sqlalchemy", *STORES),
    # Model indexing reads blobs through BlobStore and rows through units of work, like scan/.
    "models": ("moorage.web", "moorage.cli", "sqlalchemy", *STORES),
    # Signature verification reads rows through units of work and blobs through the blob service.
    "signing": ("moorage.web", "moorage.cli", "sqlalchemy", *STORES),
    # The upstream client speaks HTTP to other registries with oci/ alone: no state of ours.
    "upstream": ("moorage.metadata", "moorage.web", "moorage.registry", "moorage.cli",
                 "moorage.storage", "sqlalchemy"),
    # web/ and cli/ get services from bootstrap.py: no engine, no SQL, no store of their own.
    "web": ("moorage.cli", "moorage.metadata", "moorage.storage.factory", "moorage.storage.s3",
            "moorage.storage.filesystem", "sqlalchemy"),
    "cli": ("moorage.web", "moorage.metadata", "moorage.storage", "sqlalchemy"),
    # The /v2/ handlers and the management API are siblings: neither leans on the other, and
    # only app.py wires them (routes.py names them; api/ reads its own routes back from it).
    "web/v2": ("moorage.web.api", "moorage.web.token", "moorage.web.app"),
    "web/api": ("moorage.web.v2", "moorage.web.token", "moorage.web.app"),
}


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports_only_downward(layer: str) -> None:
    assert _modules(layer), f"no modules in {layer}/"
    assert _offenders(layer, RULES[layer]) == {}


def test_the_checker_sees_a_forbidden_import() -> None:
    # web/ imports the registry services: the same check on it must report them.
    assert _offenders("web", ("moorage.registry",))
