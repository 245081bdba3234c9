"""Password hashes: argon2id at OWASP's 19 MiB setting, checks bounded per process, and hashes
made with other parameters (the 64 MiB default of earlier versions) upgraded at the next login
without ever overwriting a password that changed in between."""

from __future__ import annotations

import asyncio
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

from moorage.auth import secrets
from moorage.auth.identity import Principal
from moorage.bootstrap import Registry

PASSWORD = "correct-horse-7"
OLD_HASHER = PasswordHasher()  # the library default that earlier versions stored


def _stored_hash(registry: Registry, name: str) -> str:
    with registry.database.read() as uow:
        user = uow.access.get_user(name)
    assert user is not None
    return user.password_hash


def _set_hash(registry: Registry, name: str, password_hash: str) -> None:
    with registry.database.write() as uow:
        assert uow.access.update_user(name, password_hash=password_hash)


def _add_user(registry: Registry, name: str) -> None:
    with registry.database.write() as uow:
        assert uow.access.create_user(name, secrets.hash_password(PASSWORD), False)


def _login(registry: Registry, name: str, password: str) -> Principal:
    return asyncio.run(registry.auth.login(name, password, "10.1.2.3"))


def test_new_hashes_use_owasp_argon2id_parameters():
    encoded = secrets.hash_password(PASSWORD)
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert secrets.verify_password(encoded, PASSWORD)
    assert not secrets.verify_password(encoded, PASSWORD + "x")
    assert not secrets.verify_password(None, PASSWORD)
    assert not secrets.password_needs_rehash(encoded)


def test_a_hash_with_old_parameters_still_verifies_and_is_flagged_for_rehash():
    old = OLD_HASHER.hash(PASSWORD)
    assert secrets.verify_password(old, PASSWORD)
    assert secrets.password_needs_rehash(old)
    assert not secrets.password_needs_rehash("not-a-hash")


def test_login_upgrades_an_old_hash_and_the_password_keeps_working(registry: Registry):
    _add_user(registry, "olduser")
    _set_hash(registry, "olduser", OLD_HASHER.hash(PASSWORD))
    assert _login(registry, "olduser", PASSWORD).name == "olduser"
    upgraded = _stored_hash(registry, "olduser")
    assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert secrets.verify_password(upgraded, PASSWORD)
    registry.auth._basic_cache.clear()  # the next login must check the stored hash again
    assert _login(registry, "olduser", PASSWORD).name == "olduser"


def test_a_rehash_never_overwrites_a_password_changed_meanwhile(registry: Registry):
    _add_user(registry, "racer")
    stale = OLD_HASHER.hash(PASSWORD)
    changed = secrets.hash_password("new-password-9")
    _set_hash(registry, "racer", changed)  # an admin set a new password after the check read
    with registry.database.write() as uow:
        assert not uow.access.replace_password_hash("racer", stale,
                                                    secrets.hash_password(PASSWORD))
    assert _stored_hash(registry, "racer") == changed


def test_at_most_two_password_checks_run_at_once(monkeypatch):
    running = 0
    peak = 0
    lock = threading.Lock()

    class SlowHasher:
        def verify(self, encoded: str, password: str) -> bool:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.05)
            with lock:
                running -= 1
            raise VerifyMismatchError

    monkeypatch.setattr(secrets, "_hasher", SlowHasher())
    threads = [threading.Thread(target=secrets.verify_password, args=("h", "p"))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 2
