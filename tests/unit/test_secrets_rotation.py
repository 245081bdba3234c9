"""`moorage secrets rotate`: every sealed value is re-sealed under the new key, which then
opens them alone; the old key is readable while the rotation runs and not after."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from moorage.auth.identity import CLI
from moorage.auth.sealing import KEY_FILE, PREVIOUS_KEY_FILE, Sealer, SealingError, parse_key
from moorage.config import Settings

from .conftest import make_registry


def _sealed(registry) -> dict[str, list[tuple[int, str]]]:  # type: ignore[no-untyped-def]
    with registry.database.read() as uow:
        return {t: uow.sealed.values(t) for t in ("upstreams", "webhooks")}


def test_rotate_reseals_everything_under_the_new_key(tmp_path: Path):
    data = tmp_path / "reg"
    registry = make_registry(data)
    try:
        registry.upstreams.add(CLI, "priv", "https://ghcr.io/", username="bob",
                               password="upstream-password")
        registry.webhooks.add(CLI, "team", "https://hooks.example.com/x", "push",
                              secret="webhook-secret", name="team-hook")
        old_key = parse_key((data / KEY_FILE).read_text())
        before = _sealed(registry)
    finally:
        registry.close()
    new_key = os.urandom(32)
    key_file = tmp_path / "new.key"
    key_file.write_text(base64.b64encode(new_key).decode() + "\n")

    done = subprocess.run([sys.executable, "-m", "moorage", "secrets", "rotate",
                           "--new-key-file", str(key_file), "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "re-sealed 1 upstreams, 1 webhooks" in done.stdout

    assert parse_key((data / KEY_FILE).read_text()) == new_key
    assert not (data / PREVIOUS_KEY_FILE).exists()
    registry = make_registry(data)
    try:
        after = _sealed(registry)
        assert [i for i, _ in after["webhooks"]] == [i for i, _ in before["webhooks"]]
        new_only, old_only = Sealer(new_key), Sealer(old_key)
        for table in after:
            for (_, old), (_, new) in zip(before[table], after[table], strict=True):
                assert old != new
                assert new_only.unseal(new) == old_only.unseal(old)
                with pytest.raises(SealingError):
                    old_only.unseal(new)
        # The services read them with the key from the file, as a running server does.
        assert registry.webhooks.target(after["webhooks"][0][0])[1] == "webhook-secret"
    finally:
        registry.close()


def test_previous_keys_stay_readable_during_a_rotation(tmp_path: Path):
    old, new = os.urandom(32), os.urandom(32)
    sealed_old = Sealer(old).seal(b"value")
    settings = Settings.from_env({}, data_dir=tmp_path, secrets_key=base64.b64encode(new).decode(),
                                 secrets_key_previous=base64.b64encode(old).decode())
    from moorage.auth.sealing import sealer_for

    sealer = sealer_for(settings)
    assert sealer.unseal(sealed_old) == b"value"
    assert Sealer(new).unseal(sealer.seal(b"fresh")) == b"fresh"  # new values: the new key
    without = sealer_for(Settings.from_env({}, data_dir=tmp_path,
                                           secrets_key=base64.b64encode(new).decode()))
    with pytest.raises(SealingError):
        without.unseal(sealed_old)
