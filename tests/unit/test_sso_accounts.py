"""The accounts UI single sign-on resolves (AdminService.sso_account) and the signed flow
cookie (SessionCodec.seal), on a real embedded registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.auth.identity import CLI
from moorage.bootstrap import Registry
from moorage.config import Settings
from moorage.ui.sessions import SessionCodec

ISSUER = "https://idp.example"


def _user(registry: Registry, name: str) -> dict | None:  # type: ignore[type-arg]
    return next((u for u in registry.admin.list_users(CLI) if u["name"] == name), None)


def test_an_unknown_account_is_created_only_when_creation_is_on(registry: Registry) -> None:
    assert registry.admin.sso_account("newcomer", False, None, ISSUER) is False
    assert _user(registry, "newcomer") is None
    assert registry.admin.sso_account("newcomer", True, None, ISSUER) is True
    made = _user(registry, "newcomer")
    assert made is not None and (made["admin"], made["disabled"]) == (False, False)
    created = registry.audit.query(action="user.create")
    assert created[0]["actor"] == f"sso:{ISSUER}" and created[0]["detail"]["by"] == "sso"


def test_the_admin_group_grants_and_revokes_server_admin(registry: Registry) -> None:
    registry.admin.add_user(CLI, "carol", "a-long-password")
    registry.admin.sso_account("carol", False, True, ISSUER)
    assert _user(registry, "carol")["admin"] is True  # type: ignore[index]
    registry.admin.sso_account("carol", False, None, ISSUER)  # no group setting: unchanged
    assert _user(registry, "carol")["admin"] is True  # type: ignore[index]
    registry.admin.sso_account("carol", False, False, ISSUER)
    assert _user(registry, "carol")["admin"] is False  # type: ignore[index]
    assert [e["detail"]["admin"] for e in registry.audit.query(action="user.admin")] == [
        False, True]


def test_a_sealed_value_is_bound_to_its_purpose_key_and_time() -> None:
    codec = SessionCodec(b"k" * 32, 60)
    sealed = codec.seal("sso", ["state", "nonce", "verifier"], 600, now=1000.0)
    assert codec.unseal("sso", sealed, now=1500.0) == ["state", "nonce", "verifier"]
    assert codec.unseal("sso", sealed, now=1601.0) is None  # expired
    assert codec.unseal("other", sealed, now=1500.0) is None
    assert SessionCodec(b"x" * 32, 60).unseal("sso", sealed, now=1500.0) is None
    assert codec.unseal("sso", sealed.replace(".", "a.", 1), now=1500.0) is None


@pytest.mark.parametrize("issuer", ["http://idp.example", "ftp://idp.example", "https://"])
def test_an_issuer_must_be_https_or_local(tmp_path: Path, issuer: str) -> None:
    with pytest.raises(ValueError, match="ui_oidc_issuer must be an https://"):
        Settings.from_env({}, data_dir=tmp_path, ui_oidc_issuer=issuer, ui_oidc_client_id="c")


def test_an_issuer_needs_a_client_id(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs ui_oidc_client_id"):
        Settings.from_env({}, data_dir=tmp_path, ui_oidc_issuer="https://idp.example")
    ok = Settings.from_env({}, data_dir=tmp_path, ui_oidc_issuer="http://127.0.0.1:9/",
                           ui_oidc_client_id="c")
    assert ok.ui_oidc_issuer == "http://127.0.0.1:9/"
