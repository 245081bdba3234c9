"""The token signing key and the UI session key are stored sealed under the secrets key: the
database row never holds them in the clear, a row stored in the clear before is sealed on
first read, tokens signed before a rotation of the secrets key still verify after it."""

from __future__ import annotations

import os
from pathlib import Path

from moorage.auth.identity import CLI
from moorage.auth.service import SEALED_SECRET
from moorage.auth.tokens import generate_signing_key
from moorage.operations.rotation import SecretsRotation

from .conftest import make_registry

TOKEN_KEY = "token-signing-key"


def _stored(registry) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    with registry.database.read() as uow:
        return dict(uow.access.secret_values())


def test_shared_secrets_are_stored_sealed(tmp_path: Path) -> None:
    registry = make_registry(tmp_path / "reg")
    try:
        token, _ = registry.authority.issue("ana", "user", [])
        registry.ui_sessions  # noqa: B018 (makes the session key)
        stored = _stored(registry)
        assert len(stored) >= 2
        for name, value in stored.items():
            assert value.startswith(SEALED_SECRET), name
            assert b"PRIVATE KEY" not in value
        assert registry.authority.verify(token).subject == "ana"
    finally:
        registry.close()


def test_a_secret_stored_in_the_clear_is_sealed_on_first_read(tmp_path: Path) -> None:
    registry = make_registry(tmp_path / "reg")
    try:
        plain = generate_signing_key()
        with registry.database.write() as uow:
            uow.access.create_secret("legacy-key", plain)
        assert registry.auth.shared_secret("legacy-key", generate_signing_key) == plain
        sealed = _stored(registry)["legacy-key"]
        assert sealed.startswith(SEALED_SECRET) and plain not in sealed
        assert registry.auth.shared_secret("legacy-key", generate_signing_key) == plain
    finally:
        registry.close()


def test_tokens_outlive_a_rotation_of_the_secrets_key(tmp_path: Path) -> None:
    data = tmp_path / "reg"
    registry = make_registry(data)
    try:
        token, _ = registry.authority.issue("ana", "user", [])
        before = _stored(registry)[TOKEN_KEY]
        report = SecretsRotation(registry.database, registry.settings).rotate(
            CLI, os.urandom(32))
        assert report.resealed["secrets"] >= 1
    finally:
        registry.close()
    registry = make_registry(data)  # reads the new key file
    try:
        after = _stored(registry)
        assert after[TOKEN_KEY] != before
        assert registry.authority.verify(token).subject == "ana"
    finally:
        registry.close()
