"""Passwords (argon2id) and robot secrets (random, stored as SHA-256), compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2id with OWASP's first recommended setting (19 MiB, 2 passes, 1 lane): ~45 ms per check.
# The library's default (64 MiB, 3 passes, 4 lanes) took 64 MiB per login and 160 ms.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Each check holds memory_cost bytes: at most this many run at once per process, so a flood of
# logins queues instead of taking memory without bound.
_CONCURRENT_CHECKS = threading.BoundedSemaphore(2)
# Verified against when an account does not exist, so timing does not reveal which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An argon2id hash of a password."""
    with _CONCURRENT_CHECKS:
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; spends the same effort when there is no account."""
    try:
        with _CONCURRENT_CHECKS:
            ok = _hasher.verify(password_hash or _DUMMY_HASH, password)
        return ok and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """True when a hash was made with other parameters than today's (rehash at next login)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False


def new_robot_secret() -> str:
    """A random robot secret (256 bits), shown to the user once."""
    return secrets.token_urlsafe(32)


def hash_robot_secret(secret: str) -> str:
    """Robot secrets are high-entropy, so a plain SHA-256 is enough to store them."""
    return hashlib.sha256(secret.encode()).hexdigest()


def verify_robot_secret(secret_hash: str | None, secret: str) -> bool:
    """Constant-time comparison of a presented robot secret with the stored hash."""
    presented = hash_robot_secret(secret)
    return hmac.compare_digest(secret_hash or "0" * 64, presented) and secret_hash is not None
