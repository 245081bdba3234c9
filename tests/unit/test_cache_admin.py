"""Upstreams and cache namespaces as services: server admins only, credentials sealed, names
unique, an upstream in use kept, and the lookup the request path makes."""

from __future__ import annotations

import asyncio

import pytest

from moorage.auth.identity import CLI, Principal
from moorage.bootstrap import Registry
from moorage.oci.errors import AccessDenied, RegistryError
from moorage.upstream import Basic, Token

ALICE = Principal("user", "alice")


def test_only_a_server_admin_manages_upstreams_and_caches(registry: Registry) -> None:
    with pytest.raises(AccessDenied, match="server admin"):
        registry.upstreams.add(ALICE, "hub", "https://registry-1.docker.io")
    registry.upstreams.add(CLI, "hub", "https://registry-1.docker.io")
    with pytest.raises(AccessDenied):
        registry.caches.add(ALICE, "h", "hub", "dockerhub")
    with pytest.raises(AccessDenied):
        registry.upstreams.list_upstreams(ALICE)


def test_a_password_is_stored_sealed_and_opened_for_the_client(registry: Registry) -> None:
    shown = registry.upstreams.add(CLI, "priv", "https://ghcr.io/", username="bob",
                                   password="hunter2-secret")
    assert "secret" not in shown and shown["url"] == "https://ghcr.io"
    with registry.database.read() as uow:
        row = uow.cache.upstream("priv")
    assert row is not None and row["secret"].startswith("v1:")
    assert "hunter2-secret" not in row["secret"]
    client = registry.upstreams.client(row)
    assert client.credentials == Basic("bob", "hunter2-secret")
    registry.upstreams.add(CLI, "tok", "https://quay.io", token="t0ken")
    with registry.database.read() as uow:
        tok = uow.cache.upstream("tok")
    assert tok is not None and registry.upstreams.client(tok).credentials == Token("t0ken")


def test_bad_input_is_refused_with_a_sentence(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="http:// or https://"):
        registry.upstreams.add(CLI, "x", "ftp://example.com")
    with pytest.raises(RegistryError, match="needs a password"):
        registry.upstreams.add(CLI, "x", "https://example.com", username="bob")
    with pytest.raises(RegistryError, match="invalid upstream name"):
        registry.upstreams.add(CLI, "Bad Name", "https://example.com")
    with pytest.raises(RegistryError, match="no upstream named"):
        registry.caches.add(CLI, "c", "missing", "hub")


def test_names_are_unique_and_an_upstream_in_use_stays(registry: Registry) -> None:
    registry.upstreams.add(CLI, "up", "http://127.0.0.1:5000")
    with pytest.raises(RegistryError, match="exists already") as exc:
        registry.upstreams.add(CLI, "up", "http://127.0.0.1:5001")
    assert exc.value.status == 409
    registry.caches.add(CLI, "c1", "up", "hub", 60)
    with pytest.raises(RegistryError, match="exists already"):
        registry.caches.add(CLI, "c2", "up", "hub")
    with pytest.raises(RegistryError, match="used by cache 'c1'"):
        registry.upstreams.remove(CLI, "up")
    registry.caches.remove(CLI, "c1")
    registry.upstreams.remove(CLI, "up")
    assert registry.upstreams.list_upstreams(CLI) == []


def test_the_request_path_finds_the_cache_of_a_repository_and_of_a_mirror_host(
        registry: Registry) -> None:
    registry.upstreams.add(CLI, "dh", "https://registry-1.docker.io")
    registry.caches.add(CLI, "hub", "dh", "hub", 600)

    async def main() -> None:
        target = await registry.caches.target("hub/library/alpine")
        assert target is not None and target.upstream_repository("hub/library/alpine") == \
            "library/alpine"
        assert await registry.caches.target("hosted/app") is None
        assert await registry.caches.target("hub") is None
        assert await registry.caches.mirror("docker.io", "library/alpine") == \
            "hub/library/alpine"
        assert await registry.caches.mirror("quay.io", "x/y") == "x/y"

    asyncio.run(main())


def test_no_sbom_is_generated_into_a_cache_namespace(registry: Registry) -> None:
    from moorage.scan.processor import SbomProcessor

    registry.upstreams.add(CLI, "dh", "https://registry-1.docker.io")
    registry.caches.add(CLI, "hub", "dh", "hub", 600)
    result = SbomProcessor(registry).run({"repository": "hub/library/alpine",
                                          "digest": "sha256:" + "0" * 64})
    assert result == {"skipped": "in a pull-through cache namespace"}
    assert SbomProcessor(registry).run({"repository": "hosted/app",
                                        "digest": "sha256:" + "0" * 64}) == \
        {"skipped": "the manifest is gone"}
